"""What a rule may look at: the message, its envelope, the policy in force, the directory.

Rules read; they never write. The ticket directory and the decision log are reached
through the small ``Directory`` protocol so that ``explain`` can run the very same rules
without a transaction, and tests can see exactly what a rule needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from worker.mail import Envelope, InboundMail
from worker.matching import TicketReference
from worker.policy.document import Policy
from worker.tokens import ReplyTokens


@dataclass(frozen=True)
class TicketInfo:
    id: str
    kind: str
    status: str
    closed_at: datetime | None
    participants: tuple[str, ...]
    domains: tuple[str, ...]


class Directory(Protocol):
    def ticket(self, ticket_id: str) -> TicketInfo | None: ...

    def decided(self, dedup_key: str) -> int | None: ...


@dataclass
class RuleContext:
    """The inputs of one decision plus what earlier rules found (reference, ticket)."""

    mail: InboundMail
    envelope: Envelope
    policy: Policy
    directory: Directory
    tokens: ReplyTokens
    support_domains: list[str]
    max_message_bytes: int
    reference: TicketReference | None = None
    ticket: TicketInfo | None = None
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def sender(self) -> str:
        return self.envelope.mail_from
