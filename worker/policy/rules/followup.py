"""``followup``: what the chain ends with when no rule hit, a genuine follow-up on its ticket.

Not a row of the chain table but its fall-through: it always hits, and only words the
trace's last step (and the decision's ``rule``, as old decisions spell it).
"""

from __future__ import annotations

from worker.decision import RuleName
from worker.policy.context import RuleContext
from worker.policy.rules import Verdict


class Followup:
    name = RuleName.FOLLOWUP
    description = "a referenced, authorised, open ticket accepts the follow-up"

    def check(self, ctx: RuleContext) -> Verdict:
        ticket = ctx.ticket.id if ctx.ticket else ctx.reference.ticket if ctx.reference else "?"
        return Verdict.hit_because(f"follow-up on ticket {ticket}")
