"""The view of the store the policy rules read: a ticket as rules see it, and the directory.

Rules read; they never write. The ticket directory and the decision log are reached through
the small ``Directory`` protocol, so ``explain`` runs the very same rules without a
transaction and a rule's test can hand it an in-memory directory.
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


class Directory(Protocol):
    def ticket(self, ticket_id: str) -> TicketInfo | None: ...

    def decided(self, dedup_key: str) -> int | None: ...
