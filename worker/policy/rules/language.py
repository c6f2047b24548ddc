"""``language``: from April 2022, Customer Care follow-ups are accepted in English only.

Judged on what the customer wrote in this message (quoted history and signature removed).
Text too short or too uncertain to judge is given the benefit of the doubt: the rule only
rejects what it is confident is another language.
"""

from __future__ import annotations

from worker.decision import RuleName
from worker.policy.context import RuleContext
from worker.policy.rules import Verdict


class LanguageRule:
    name = RuleName.LANGUAGE
    description = "Customer Care follow-ups must be written in an accepted language"

    def check(self, ctx: RuleContext) -> Verdict:
        ticket, policy = ctx.ticket, ctx.policy
        if ticket is None or policy is None:
            return Verdict.miss("no ticket to judge")
        settings = policy.document.language
        if not settings.enabled:
            return Verdict.miss(f"not required by policy {policy.id}")
        if ticket.kind not in settings.ticket_kinds:
            return Verdict.miss(f"not required for {ticket.kind} tickets")
        guess = ctx.mail.written_language
        if guess.letters < settings.min_letters or guess.language is None:
            return Verdict.miss(f"too little text to judge ({guess.letters} letters)")
        if guess.language in settings.accepted:
            return Verdict.miss(f"written in {guess.language} ({guess.confidence:.2f})")
        if guess.confidence < settings.min_confidence:
            return Verdict.miss(f"unsure: {guess.language} at {guess.confidence:.2f}")
        return Verdict.hit_because(
            f"written in {guess.language} ({guess.confidence:.2f}); accepted: "
            + ", ".join(settings.accepted)
        )
