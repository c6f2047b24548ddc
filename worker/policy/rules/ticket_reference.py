"""``ticket_reference``: find the ticket this message refers to; never decides by itself.

It records in the context what the later rules judge (the reference, and how it was found)
and in the trace every matching method it tried.
"""

from __future__ import annotations

from worker.matching import find_reference
from worker.policy.context import RuleContext
from worker.policy.rules import Verdict


class TicketReference:
    name = "ticket_reference"
    description = "look for a signed address, a minted Message-ID or a subject tag"

    def check(self, ctx: RuleContext) -> Verdict:
        reference, notes = find_reference(
            ctx.mail,
            list(ctx.envelope.rcpt_tos),
            ctx.policy.document.matching,
            ctx.tokens,
            ctx.support_domains,
        )
        ctx.reference = reference
        if reference is None:
            return Verdict.miss("no reference: " + "; ".join(notes))
        how = "verified" if reference.signed else "unverified"
        return Verdict.miss(
            f"{how} reference to ticket {reference.ticket} by {reference.method} "
            "(" + "; ".join(notes) + ")"
        )
