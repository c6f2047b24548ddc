"""``quarantine``: mail that cannot be judged safely is kept for a human, never answered."""

from __future__ import annotations

from worker.decision import RuleName
from worker.policy.context import RuleContext
from worker.policy.rules import Verdict


class Quarantine:
    name = RuleName.QUARANTINE
    description = "unparseable, oversize or suspicious mail is kept for review"

    def check(self, ctx: RuleContext) -> Verdict:
        mail = ctx.mail
        if len(mail.raw) > ctx.max_message_bytes:
            return Verdict.hit_because(f"oversize: {len(mail.raw)} bytes > {ctx.max_message_bytes}")
        if mail.parse_error:
            return Verdict.hit_because(f"unparseable: {mail.parse_error}")
        ids = {i.lower() for v in mail.header_all("Message-ID") for i in v.split()}
        if len(mail.header_all("Message-ID")) > 1 and len(ids) > 1:
            return Verdict.hit_because("suspicious: several different Message-ID headers")
        if len(mail.header_all("From")) > 1:
            return Verdict.hit_because("suspicious: several From headers")
        return Verdict.miss("parseable and within limits")
