"""``unknown_ticket``: the referenced ticket does not exist in the directory."""

from __future__ import annotations

from worker.decision import RuleName
from worker.policy.context import RuleContext
from worker.policy.rules import Verdict


class UnknownTicket:
    name = RuleName.UNKNOWN_TICKET
    description = "a reference to a ticket that does not exist opens nothing"

    def check(self, ctx: RuleContext) -> Verdict:
        if ctx.reference is None:
            return Verdict.miss("no reference to judge")
        if ctx.ticket is None:
            return Verdict.hit_because(f"ticket {ctx.reference.ticket} does not exist")
        return Verdict.miss(
            f"ticket {ctx.ticket.id} exists ({ctx.ticket.kind}, {ctx.ticket.status})"
        )
