"""Resolving what a message refers to, once, before the rule chain runs.

The reference (signed address, minted Message-ID, subject tag) and the ticket it names are
looked up here and nowhere else, and the lookup is recorded as the trace step
``ticket_reference`` with every matching method it tried, the name old traces already use.
The rules then only judge what this step found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from worker.decision import RuleName
from worker.mail import Envelope, InboundMail
from worker.matching import TicketReference, find_reference
from worker.policy.document import Policy
from worker.store.tickets_view import TicketInfo, TicketSource
from worker.tokens import ReplyTokens

DESCRIPTION = "look for a signed address, a minted Message-ID or a subject tag"


@dataclass(frozen=True)
class Resolution:
    """The reference found (if any), its ticket (if it exists), and the trace step."""

    reference: TicketReference | None
    ticket: TicketInfo | None
    step: dict[str, Any]


def resolve(
    mail: InboundMail,
    envelope: Envelope,
    policy: Policy | None,
    directory: TicketSource,
    tokens: ReplyTokens,
    support_domains: list[str],
) -> Resolution:
    """Find the ticket reference and the ticket; never decides by itself."""
    if policy is None:
        return Resolution(None, None, _step("no policy in force: references not looked up"))
    reference, notes = find_reference(
        mail, list(envelope.rcpt_tos), policy.document.matching, tokens, support_domains
    )
    if reference is None:
        return Resolution(None, None, _step("no reference: " + "; ".join(notes)))
    how = "verified" if reference.signed else "unverified"
    reason = (
        f"{how} reference to ticket {reference.ticket} by {reference.method} "
        "(" + "; ".join(notes) + ")"
    )
    return Resolution(reference, directory.ticket(reference.ticket), _step(reason))


def _step(reason: str) -> dict[str, Any]:
    return {"rule": str(RuleName.TICKET_REFERENCE), "hit": False, "reason": reason}
