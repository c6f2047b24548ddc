"""Resolving "already decided?" once, before the rule chain runs, as the ticket reference is.

Either the answer is known — the message's ``dedup_key`` names an earlier decision (its id
and name), or names none — or it is deferred to commit. A dry run (``explain``) reads the
decision log and knows. A decision about to be recorded does not read: the unique
``dedup_key`` in the write transaction decides, and must, since no read sees a concurrent
delivery. A race lost there *replaces* the chain's outcome with the ``duplicate`` step
(``at_commit``), so a stored trace never holds a miss and a hit for the same rule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from worker.decision import RuleName
from worker.store.tickets_view import Directory


@dataclass(frozen=True)
class Earlier:
    """What is known before the chain about an earlier decision of the same message."""

    dedup_key: str
    decision_id: int | None = None  # known: this decision came first
    decision: str | None = None  # and its name, so a transport needs no query
    deferred: bool = False  # not read: the unique key decides at commit

    @property
    def found(self) -> bool:
        return self.decision_id is not None


def look_up(dedup_key: str, directory: Directory) -> Earlier:
    """Known, from the decision log as it stands (a dry run)."""
    found = directory.decided_as(dedup_key)
    if found is None:
        return Earlier(dedup_key)
    return Earlier(dedup_key, decision_id=found[0], decision=found[1])


def deferred(dedup_key: str) -> Earlier:
    """Left to the write transaction's unique key (a decision about to be recorded)."""
    return Earlier(dedup_key, deferred=True)


def at_commit(trace: list[dict[str, Any]], decision_id: int) -> list[dict[str, Any]]:
    """The trace of a message found decided at commit: everything the chain did from the
    ``duplicate`` rule on is replaced by that rule's hit, as if the answer had been known
    before (``duplicate`` is the chain's first rule: only the resolution steps stay)."""
    cut = next(
        (n for n, step in enumerate(trace) if step["rule"] == RuleName.DUPLICATE), len(trace)
    )
    hit = {
        "rule": str(RuleName.DUPLICATE),
        "hit": True,
        "reason": f"already decided as decision #{decision_id} (found by the unique key at commit)",
    }
    return [*trace[:cut], hit]
