"""``followup``: everything before passed, so this is a genuine follow-up on its ticket."""

from __future__ import annotations

from worker.policy.context import RuleContext
from worker.policy.rules import Verdict


class Followup:
    name = "followup"
    description = "a referenced, authorised, open ticket accepts the follow-up"

    def check(self, ctx: RuleContext) -> Verdict:
        assert ctx.ticket is not None
        return Verdict(True, f"follow-up on ticket {ctx.ticket.id}", "accepted_followup")
