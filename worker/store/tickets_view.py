"""The view of the store the resolution before the chain reads: a ticket as rules see it.

Nothing here writes. The ticket directory and the decision log are reached through the
small ``TicketSource`` and ``Directory`` protocols, so ``explain`` resolves a message
exactly as ``ingest`` does and a rule's test can hand it an in-memory directory.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class TicketInfo:
    id: str
    kind: str
    status: str
    closed_at: datetime | None
    participants: tuple[str, ...]
    domains: tuple[str, ...]

    @classmethod
    def from_row(cls, row: Any) -> TicketInfo:
        """From a ``ticket`` row, ORM object or Core row alike."""
        return cls(
            id=row.id,
            kind=row.kind,
            status=row.status,
            closed_at=row.closed_at,
            participants=tuple(row.participants),
            domains=tuple(row.domains),
        )


class TicketSource(Protocol):
    """Where the ticket reference finds its ticket (the store, or the cache)."""

    def ticket(self, ticket_id: str) -> TicketInfo | None: ...


class Directory(TicketSource, Protocol):
    """The store as a dry run reads it: tickets, and the earlier decision of a message."""

    def decided_as(self, dedup_key: str) -> tuple[int, str] | None: ...
