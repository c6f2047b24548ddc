"""``new_ticket``: no reference to any ticket at all, so this is a new request by email.

This is the June 2018 rule itself: new tickets are opened in WMP, never by email.
"""

from __future__ import annotations

from worker.decision import RuleName
from worker.policy.context import RuleContext
from worker.policy.rules import Verdict


class NewTicket:
    name = RuleName.NEW_TICKET
    description = "mail without a ticket reference cannot open a ticket"

    def check(self, ctx: RuleContext) -> Verdict:
        if ctx.reference is None:
            return Verdict.hit_because("no ticket reference: new tickets are opened in WMP")
        return Verdict.miss(f"refers to ticket {ctx.reference.ticket}")
