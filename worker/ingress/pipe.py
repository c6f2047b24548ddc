"""The pipe transport: ``mailgate ingest`` as an MTA's pipe runs it, one message per call.

Postfix's pipe(8) runs ``mailgate ingest - --sender ${sender} --recipient ${recipient}``
with the message on standard input and no environment (settings come from ``--config``).
Two of its habits are handled here: the null sender arrives as ``MAILER-DAEMON``, and a
message for several recipients expands ``${recipient}`` into several arguments, which
click would see as extra positional arguments; they are read as further recipients, and
the message is still one message, decided once. Without ``--sender`` the envelope comes
from the headers (``Envelope.from_headers``). ``explain`` reads its message the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from worker.clock import utcnow
from worker.decision import Channel
from worker.errors import UsageProblem
from worker.files import read_bytes
from worker.ingress.gateway import Gateway
from worker.mail import Envelope, InboundMail, envelope_sender, normalize_address
from worker.settings import Settings
from worker.startup import open_gate

if TYPE_CHECKING:
    from worker.decision import Decision
    from worker.pipeline import Mailgate


@dataclass(frozen=True)
class PipeDelivery:
    """What the MTA handed over: where the message is, and its envelope if it gave one."""

    source: str  # a file, or "-" for standard input
    sender: str | None
    recipients: tuple[str, ...]

    @classmethod
    def from_arguments(
        cls,
        positional: list[str],
        sender: str | None,
        recipients: list[str],
        exists: Callable[[str], bool] | None = None,
    ) -> PipeDelivery:
        """FILE among the positional arguments; the other ones are recipients Postfix added.

        ``exists`` tells whether a value names a file where ``ingest`` runs (the ingest
        socket passes what the client saw)."""
        exists = exists or (lambda value: Path(value).exists())
        files = [value for value in positional if not _is_recipient(value, exists)]
        if len(files) > 1:
            raise UsageProblem(f"one message per call: got {len(files)} files ({', '.join(files)})")
        extra = [value for value in positional if _is_recipient(value, exists)]
        return cls(
            source=files[0] if files else "-",
            sender=sender,
            recipients=(*recipients, *extra),
        )

    def envelope(self, raw: bytes, received_at: datetime | None = None) -> Envelope:
        """The envelope the MTA gave, else the one the headers tell."""
        when = received_at or utcnow()
        rcpts = tuple(a for a in (normalize_address(r) for r in self.recipients) if a)
        if self.sender is None:
            return Envelope.from_headers(InboundMail.from_bytes(raw), Channel.PIPE, when, rcpts)
        return Envelope(
            mail_from=envelope_sender(self.sender),
            rcpt_tos=rcpts,
            channel=Channel.PIPE,
            received_at=when,
        )


def _is_recipient(value: str, exists: Callable[[str], bool]) -> bool:
    """An address, not a file: the MTA appended it, nobody named a file like that."""
    return value != "-" and bool(normalize_address(value)) and not exists(value)


def ingest(settings: Settings, delivery: PipeDelivery) -> Decision:
    """Decide and commit the message through the gateway; any failure raises, and the
    command's exit-code table (``worker.exits.PIPE``) answers it: the MTA keeps the message.
    The same message piped again is a ``duplicate``."""
    raw = read_bytes(delivery.source)
    return deliver(open_gate(settings), raw, delivery)


def deliver(gate: Mailgate, raw: bytes, delivery: PipeDelivery) -> Decision:
    """One pipe delivery of ``raw`` through the gateway."""
    return Gateway(gate).decide(raw, delivery.envelope(raw))


def explain(settings: Settings, delivery: PipeDelivery, at: datetime | None) -> Decision:
    """The decision ``ingest`` would make (as if received ``at``), writing nothing."""
    raw = read_bytes(delivery.source)
    gate = open_gate(settings)
    return gate.explain(raw, delivery.envelope(raw, at))


def output(decision: Decision, as_json: bool) -> str:
    """What ``ingest`` prints, in-process or answered over the ingest socket alike."""
    if as_json:
        return json.dumps(decision.as_dict()) + "\n"
    from io import StringIO

    from rich.console import Console

    text = StringIO()  # the same console options as worker.console.out
    Console(file=text, highlight=False, soft_wrap=True).print(summary(decision))
    return text.getvalue()


def summary(decision: Decision) -> str:
    """One human line: decision, rule, policy, ticket and what became of the reply."""
    reply = decision.reply
    reason = f": {reply.reason}" if reply.reason else ""
    return (
        f"{decision.decision} (rule {decision.rule}, policy {decision.policy}, "
        f"ticket {decision.ticket or '-'}; reply {reply.status}{reason})"
    )
