"""What a rule may look at: the message, its envelope, the policy in force, the resolved ticket.

The context is complete before the chain runs: the ticket reference and the ticket itself
are looked up once (``worker.policy.reference``) and recorded as the trace's first step, and
whether the message was already decided is known or deferred to commit
(``worker.policy.earlier``), so every rule is a pure predicate over it.
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.mail import Envelope, InboundMail
from worker.matching import TicketReference
from worker.policy.document import Policy
from worker.policy.earlier import Earlier
from worker.store.tickets_view import TicketInfo


@dataclass(frozen=True)
class RuleContext:
    """The inputs of one decision, with its ticket reference, ticket and earlier decision
    already resolved."""

    mail: InboundMail
    envelope: Envelope
    policy: Policy | None
    earlier: Earlier
    support_domains: list[str]
    max_message_bytes: int
    reference: TicketReference | None = None
    ticket: TicketInfo | None = None

    @property
    def sender(self) -> str:
        return self.envelope.mail_from
