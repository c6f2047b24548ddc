"""The replay transport: an mbox or Maildir archive decided message by message, in batches.

Each message is decided under the policy in force when it was received (its newest sane
``Received`` date, else ``Date``; see ``worker.archive``), with the envelope its headers
tell. Batches of ``BATCH`` messages share one transaction; a replay that stops half-way
is simply run again, because what was decided comes back as ``duplicate``. A dry run
decides the same way and writes nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from worker import archive as archives
from worker.clock import utcnow
from worker.decision import Channel
from worker.errors import InputError, NoInputError
from worker.ingress.gateway import Gateway
from worker.mail import Envelope, InboundMail

if TYPE_CHECKING:
    from worker.decision import Decision
    from worker.pipeline import Mailgate

BATCH = 100


@dataclass
class ReplaySummary:
    """How many messages got each decision, and how many had no usable date."""

    counts: Counter[str] = field(default_factory=Counter)
    undated: int = 0

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def count(archive: Path) -> int:
    """The number of messages in the archive; a path that is no archive is bad input."""
    if not archive.exists():
        raise NoInputError(archive, "no such file or directory")
    try:
        return archives.count(archive)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    except OSError as exc:
        raise NoInputError(archive, exc.strerror or type(exc).__name__) from None


def replay(
    gate: Mailgate,
    archive: Path,
    *,
    dry_run: bool = False,
    advance: Callable[[], None] = lambda: None,
) -> ReplaySummary:
    """Decide every message of ``archive``; ``advance`` is called once per message read."""
    summary = ReplaySummary()
    decide = _dry_run(gate) if dry_run else Gateway(gate).decide_many
    for batch in _batches(archive, summary, advance):
        summary.counts.update(decision.decision for decision in decide(batch))
    return summary


def _batches(
    archive: Path, summary: ReplaySummary, advance: Callable[[], None]
) -> Iterator[list[tuple[bytes, Envelope]]]:
    batch: list[tuple[bytes, Envelope]] = []
    for raw in archives.messages(archive):
        mail = InboundMail.from_bytes(raw)
        when = archives.received_at(mail)
        if when is None:
            summary.undated += 1
        batch.append((raw, Envelope.from_headers(mail, Channel.REPLAY, when or utcnow())))
        advance()
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _dry_run(gate: Mailgate) -> Callable[[list[tuple[bytes, Envelope]]], list[Decision]]:
    def explain_all(batch: list[tuple[bytes, Envelope]]) -> list[Decision]:
        return [gate.explain(raw, envelope) for raw, envelope in batch]

    return explain_all
