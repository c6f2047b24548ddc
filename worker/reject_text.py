"""The text of a ``550 5.7.1`` given in the SMTP dialogue or through the milter.

The policy's one-line text per rejection (``[replies.smtp_reject]``), one clause per reply
line, and below it the same text in the customer's language from the catalogue. SMTP
reply text is ASCII, so accents are dropped from the translation; a reply that would grow
past ``MAX_BYTES`` keeps the English alone (some milter clients fail on long replies).
"""

from __future__ import annotations

import string
import unicodedata

from worker.catalogues import DEFAULT, catalogue
from worker.policy.document import Policy

MAX_BYTES = 400
_FOLDED = str.maketrans({"ß": "ss", "æ": "ae", "œ": "oe", "ø": "o", "ł": "l", "đ": "d"})
# Where a language writes its accents in ASCII otherwise: a German umlaut as a following
# e, an Italian accented vowel with an apostrophe ("e'" is "is", "e" is "and").
_BY_LANGUAGE = {
    "de": str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "Ä": "Ae", "Ö": "Oe", "Ü": "Ue"}),
    "it": str.maketrans(
        {"à": "a'", "è": "e'", "é": "e'", "ì": "i'", "ò": "o'", "ù": "u'", "È": "E'"}
    ),
}


def ascii_folded(text: str, language: str = "") -> str:
    """The text with accents dropped and anything else outside printable ASCII removed."""
    text = text.translate(_BY_LANGUAGE.get(language, {}))
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLDED))
    kept = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return "".join(ch for ch in kept if " " <= ch <= "~").replace("%", " percent")


def _clauses(text: str) -> list[str]:
    """One reply line per clause, each starting with a capital."""
    clauses = [clause.strip() for clause in text.split("; ") if clause.strip()]
    return [clause[:1].upper() + clause[1:] for clause in clauses]


def reject_lines(policy: Policy | None, decision: str, language: str | None) -> list[str]:
    """The reply lines (without code) for ``decision``; empty when the policy has none."""
    if policy is None:
        return []
    english = policy.smtp_reject_text(decision)
    if english is None:
        return []
    lines = _clauses(english)
    if not language or language == DEFAULT:
        return lines
    source = policy.document.replies.smtp_reject[decision]
    translated = catalogue(language).translate(source)
    if translated is None:
        return lines
    portal = {"portal_url": policy.document.portal_url}
    local = _clauses(ascii_folded(string.Template(translated).safe_substitute(portal), language))
    both = lines + local
    if sum(len(line) + len("550-5.7.1 \r\n") for line in both) > MAX_BYTES:
        return lines
    return both
