"""``suspected_bounce``: unreferenced mail that reads like a bounce or an absence notice.

Old and odd mail servers send delivery failures and vacation notices without any of the
standard signals (null sender, ``Auto-Submitted``, ``multipart/report``). Answering them is
backscatter, so when a message refers to no ticket and its subject or sender name reads
like one, it is ignored. It runs after ``ticket_reference`` on purpose: a customer's
follow-up that happens to mention "delivery failed" still reaches its ticket.
"""

from __future__ import annotations

import re

from worker.policy.context import RuleContext
from worker.policy.rules import Verdict

SUBJECT_SIGNS = re.compile(
    r"returned mail|undeliver|undelivered|delivery status notification|delivery fail|"
    r"failure notice|non remis|non[- ]?deliverable|unzustellbar|nicht zustellbar|"
    r"non recapitabile|mancato recapito|no entregado|onbestelbaar|returned to sender|"
    r"could not be delivered|message not delivered|mail system error|delivery notification|"
    r"automatic reply|auto[- ]?reply|out of (?:the )?office|abwesenheit|risposta automatica|"
    r"r[ée]ponse automatique|respuesta autom[áa]tica|fuera de la oficina|autosvar|"
    r"vacation|on leave|automatisch antwoord|"
    # Feedback-loop complaints outside ARF (Hotmail JMRP: "complaint about message from
    # <IP>"), list servers' loop alerts, challenge-response requests to verify the sender.
    r"complaint about message from|loop alert|mail loop detected|looping mail|"
    r"unverified email to|please verify your e-?mail|verify your message|"
    r"auto-?response|automatische antwort|abwesenheitsnotiz|absence notice|"
    r"notification d'absence|自动回复|自動回覆|自動応答",
    re.IGNORECASE,
)
SENDER_NAME_SIGNS = re.compile(
    r"mail delivery|mailer[- ]daemon|postmaster|mail administrator|antivirus|delivery system",
    re.IGNORECASE,
)


class SuspectedBounce:
    name = "suspected_bounce"
    description = "unreferenced mail that reads like a bounce or absence notice is not answered"

    def check(self, ctx: RuleContext) -> Verdict:
        if ctx.reference is not None:
            return Verdict.miss("refers to a ticket")
        subject = ctx.mail.subject
        match = SUBJECT_SIGNS.search(subject)
        if match:
            return Verdict(
                True,
                f"subject reads like an automatic notice ({match.group(0)!r})",
                "ignored_auto_generated",
            )
        match = SENDER_NAME_SIGNS.search(ctx.mail.from_name)
        if match:
            return Verdict(
                True,
                f"sender name reads like a mail system ({match.group(0)!r})",
                "ignored_auto_generated",
            )
        return Verdict.miss("reads like a person's message")
