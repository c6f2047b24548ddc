"""``duplicate``: the same message (Message-ID, else raw digest) was already decided.

The rule judges what was resolved before the chain (``worker.policy.earlier``): an earlier
decision known from the log hits; none known misses, saying whether the unique
``dedup_key`` is still to confirm it at commit, where a lost race replaces the outcome.
"""

from worker.decision import RuleName
from worker.policy.context import RuleContext
from worker.policy.rules import Verdict


class Duplicate:
    name = RuleName.DUPLICATE
    description = "a message already decided is never decided or answered again"

    def check(self, ctx: RuleContext) -> Verdict:
        earlier = ctx.earlier
        if earlier.found:
            return Verdict.hit_because(f"already decided as decision #{earlier.decision_id}")
        key = earlier.dedup_key[:80]
        if earlier.deferred:
            return Verdict.miss(f"first time for {key} unless the unique key finds it at commit")
        return Verdict.miss(f"first time for {key}")
