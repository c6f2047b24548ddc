"""``unknown_ticket``: the referenced ticket does not exist in the directory."""

from __future__ import annotations

from worker.policy.context import RuleContext
from worker.policy.rules import Verdict


class UnknownTicket:
    name = "unknown_ticket"
    description = "a reference to a ticket that does not exist opens nothing"

    def check(self, ctx: RuleContext) -> Verdict:
        assert ctx.reference is not None
        ctx.ticket = ctx.directory.ticket(ctx.reference.ticket)
        if ctx.ticket is None:
            return Verdict(
                True, f"ticket {ctx.reference.ticket} does not exist", "rejected_unknown_ticket"
            )
        return Verdict.miss(
            f"ticket {ctx.ticket.id} exists ({ctx.ticket.kind}, {ctx.ticket.status})"
        )
