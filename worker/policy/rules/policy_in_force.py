"""``policy_in_force``: no policy version was in force when the message was received.

Mail from before the first policy's ``effective_from`` cannot be judged by any rule, so it
is kept for a human and never answered.
"""

from __future__ import annotations

from worker.decision import RuleName
from worker.policy.context import RuleContext
from worker.policy.rules import Verdict


class PolicyInForce:
    name = RuleName.POLICY_IN_FORCE
    description = "mail received before any policy took effect is kept for review"

    def check(self, ctx: RuleContext) -> Verdict:
        if ctx.policy is None:
            return Verdict.hit_because(
                f"no policy in force at {ctx.envelope.received_at.isoformat()}"
            )
        return Verdict.miss(f"policy {ctx.policy.id} in force")
