"""What a rule may look at: the message, its envelope, the policy in force, the resolved ticket.

The context is complete before the chain runs: the ticket reference and the ticket itself
are looked up once (``worker.policy.reference``) and recorded as the trace's first step, so
every rule is a pure predicate over it. The directory stays reachable for the one rule that
reads the decision log (``duplicate``).
"""

from __future__ import annotations

from dataclasses import dataclass

from worker.mail import Envelope, InboundMail
from worker.matching import TicketReference
from worker.policy.document import Policy
from worker.store.tickets_view import Directory, TicketInfo


@dataclass(frozen=True)
class RuleContext:
    """The inputs of one decision, with its ticket reference and ticket already resolved."""

    mail: InboundMail
    envelope: Envelope
    policy: Policy | None
    directory: Directory
    support_domains: list[str]
    max_message_bytes: int
    reference: TicketReference | None = None
    ticket: TicketInfo | None = None

    @property
    def sender(self) -> str:
        return self.envelope.mail_from
