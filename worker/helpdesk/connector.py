"""What mailgate needs from a helpdesk, whichever it is: the connector interface.

A connector does three things. ``changes`` lists the tickets changed since a durable cursor
(an opaque string the connector alone understands) and returns the next cursor; ``deliver``
puts an accepted follow-up into its ticket as the customer's correspondence, exactly once
(it looks for the message in the ticket before posting, so a retry after a timeout finds
the first attempt's work); ``health`` says whether the helpdesk answers. Failures that a
later attempt may cure raise ``HelpdeskUnavailable``; the caller retries with backoff.
``HelpdeskRefused`` is the answer no retry can change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol


class HelpdeskUnavailable(Exception):
    """The helpdesk did not answer, or answered that it cannot do this now."""


class HelpdeskRefused(Exception):
    """The helpdesk answered that this can never be done (no such ticket there): retrying
    would only wait for the dead-letter age, so the row fails at once, visibly."""


@dataclass(frozen=True)
class RemoteTicket:
    """A ticket as the helpdesk holds it, in the directory's terms."""

    id: str
    queue: str
    status: Literal["open", "closed"]
    closed_at: datetime | None
    participants: tuple[str, ...]
    merged_into: str | None = None  # the survivor, for a ticket merged into another


@dataclass(frozen=True)
class Changes:
    """One sync round's tickets and the cursor to start the next round from."""

    tickets: list[RemoteTicket]
    cursor: str


@dataclass(frozen=True)
class FollowUp:
    """An accepted follow-up, as the outbox row carries it."""

    ticket: str
    message_id: str
    raw: bytes


DeliveryResult = Literal["delivered", "already_there"]


class Connector(Protocol):
    name: str

    def changes(self, cursor: str | None) -> Changes: ...

    def deliver(self, follow_up: FollowUp) -> DeliveryResult: ...

    def health(self) -> None: ...
