"""``suspected_bounce``: unreferenced mail that reads like a bounce or an absence notice.

Old and odd mail servers send delivery failures and vacation notices without any of the
standard signals (null sender, ``Auto-Submitted``, ``multipart/report``). Answering them is
backscatter, so when a message refers to no ticket and its subject or sender name reads
like one, it is ignored. It runs after ``ticket_reference`` on purpose: a customer's
follow-up that happens to mention "delivery failed" still reaches its ticket.
"""

from __future__ import annotations

import re
import unicodedata

from worker.decision import RuleName
from worker.mail import InboundMail
from worker.policy.context import RuleContext
from worker.policy.rules import Verdict

# Phrases only mail systems put in a subject, wherever they stand.
SUBJECT_SIGNS = re.compile(
    r"returned mail|delivery status notification|failure notice|non remis|unzustellbar|"
    r"nicht zustellbar|non recapitabile|mancato recapito|onbestelbaar|"
    r"automatic reply|auto[- ]?reply|auto-?response|abwesenheit|risposta automatica|"
    r"r[ée]ponse automatique|respuesta autom[áa]tica|autosvar|automatisch antwoord|"
    r"automatische antwort|notification d'absence|自动回复|自動回覆|自動応答|"
    # Outlook's "Automatic reply:" in the languages it ships, matched with accents folded
    # ("Ārpus biroja automātiskā atbilde" is sent as is and transliterated alike).
    r"automatiska atbilde|automatinis atsakymas|automaatvastus|automatyczna odpowiedz|"
    r"automaticka odpove[dď]|automatikus valasz|raspuns automat|resposta automatica|"
    r"automatiskt? svar|automaattinen vastaus|otomatik yan[iı]t|automatski odgovor|"
    r"samodejni odgovor|balasan otomatis|tra loi tu [dđ]ong|автоматическии ответ|"
    r"автоматична в[iі]дпов[iі]дь|автоматичен отговор|αυτοματη απαντηση|자동 회신|자동 응답|"
    r"自動返信|自动答复|תשובה אוטומטית|رد تلقائي|"
    # Feedback-loop complaints outside ARF (Hotmail JMRP: "complaint about message from
    # <IP>"), list servers' loop alerts, challenge-response requests to verify the sender.
    r"complaint about message from|loop alert|mail loop detected|unverified email to",
    re.IGNORECASE,
)
# Phrases a person also writes ("our fax delivery failed since Monday", "Vacation request",
# "Absence of dial tone", "Out of office hours support"): a sign only where a mail system
# puts them, at the start and closed by a colon or the end of the subject ("Out of Office:
# <subject>", "Mail delivery failed: returning message to sender", "Vacation").
_CLOSED = r"(?:\s*:|\s*$)"
LEADING_SUBJECT_SIGNS = re.compile(
    # RFC 3834 3.1.5's "Auto:" prefix (Lotus Notes: "AUTO: <name> is out of the office"),
    # only first: a person answering an automatic reply writes "Re: Auto: …".
    r"^\s*auto\s*:|"
    r"^[\W_]*(?:(?:warning|notice|fwd?|re|aw|sv|tr|wg)\s*:\s*)*[\W_]*(?:"
    r"undeliver|non[- ]?deliverable|no entregado|returned to sender|mail system error|"
    r"(?:mail|message|e-?mail)\s+(?:delivery fail|could not be delivered|not delivered)|"
    r"(?:delivery (?:failure|notification|status)(?:\s+(?:notification|notice|report))?|"
    rf"not delivered){_CLOSED}|"
    r"(?:out of (?:the )?office|vacation|absence|on leave|fuera de la oficina)"
    rf"(?:\s+(?:auto\s?reply|reply|notice|message|response|notification))?{_CLOSED}|"
    r"(?:please )?verify your (?:message|e-?mail)"
    r")",
    re.IGNORECASE,
)


# Mailers that are programming libraries, not mail clients: what they send is a script's
# (bulletins, monitoring, web applications), never a person typing at a client.
SCRIPT_MAILERS = re.compile(r"^\s*(?:microsoft cdo\b|phpmailer\b|php/\d)", re.IGNORECASE)


def script_mailer(mail: InboundMail) -> str | None:
    """The X-Mailer of a scripting library, or ``None``."""
    mailer = mail.header("X-Mailer") or ""
    return mailer[:40] if SCRIPT_MAILERS.match(mailer) else None


def fold_accents(text: str) -> str:
    """``text`` without combining marks ("automātiskā" → "automatiska"), recomposed so that
    scripts built from jamo or kana stay whole."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return unicodedata.normalize("NFC", bare)


def subject_sign(subject: str) -> str | None:
    """The phrase that makes a subject read like an automatic notice, or ``None``."""
    folded = fold_accents(subject)
    match = SUBJECT_SIGNS.search(folded) or LEADING_SUBJECT_SIGNS.search(folded)
    if match is None:
        return None
    return match.group(0).strip(" :[]*_-")[-60:]


SENDER_NAME_SIGNS = re.compile(
    r"mail delivery|mailer[- ]daemon|postmaster|mail administrator|antivirus|delivery system",
    re.IGNORECASE,
)


class SuspectedBounce:
    name = RuleName.SUSPECTED_BOUNCE
    description = "unreferenced mail that reads like a bounce or absence notice is not answered"

    def check(self, ctx: RuleContext) -> Verdict:
        if ctx.reference is not None:
            return Verdict.miss("refers to a ticket")
        subject = ctx.mail.subject
        sign = subject_sign(subject)
        if sign:
            return Verdict.hit_because(f"subject reads like an automatic notice ({sign!r})")
        mailer = script_mailer(ctx.mail)
        if mailer:
            return Verdict.hit_because(f"sent by a script ({mailer!r})")
        match = SENDER_NAME_SIGNS.search(ctx.mail.from_name)
        if match:
            return Verdict.hit_because(f"sender name reads like a mail system ({match.group(0)!r})")
        return Verdict.miss("reads like a person's message")
