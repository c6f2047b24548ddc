"""``new_ticket``: no reference to any ticket at all, so this is a new request by email.

This is the June 2018 rule itself: new tickets are opened in WMP, never by email.
"""

from __future__ import annotations

from worker.policy.context import RuleContext
from worker.policy.rules import Verdict


class NewTicket:
    name = "new_ticket"
    description = "mail without a ticket reference cannot open a ticket"

    def check(self, ctx: RuleContext) -> Verdict:
        if ctx.reference is None:
            return Verdict(
                True, "no ticket reference: new tickets are opened in WMP", "rejected_new_ticket"
            )
        return Verdict.miss(f"refers to ticket {ctx.reference.ticket}")
