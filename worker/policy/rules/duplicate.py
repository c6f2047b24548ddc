"""``duplicate``: the same message (Message-ID, else raw digest) was already decided.

This rule makes ``explain`` and the trace honest; the guarantee itself is the unique
constraint on ``decision.dedup_key``, which catches the race this read cannot.
"""

from worker.decision import RuleName
from worker.policy.context import RuleContext
from worker.policy.rules import Verdict


class Duplicate:
    name = RuleName.DUPLICATE
    description = "a message already decided is never decided or answered again"

    def check(self, ctx: RuleContext) -> Verdict:
        earlier = ctx.directory.decided(ctx.mail.dedup_key)
        if earlier is None:
            return Verdict.miss(f"first time for {ctx.mail.dedup_key[:80]}")
        return Verdict.hit_because(f"already decided as decision #{earlier}")
