"""The spam verdict of the desk's own filter, read from the headers its milter adds.

mailgate is not a spam filter, but the MTA in front of it usually runs one (SpamAssassin's
spamass-milter or rspamd's milter). An automatic reply to spam is backscatter to a forged
sender, so when that filter says "spam" the message is still decided and recorded, but its
reply is suppressed. A forged "yes" in a message can only suppress the forger's own reply,
so the headers need no authentication.
"""

from __future__ import annotations

import re

from worker.mail import InboundMail
from worker.policy.document import Policy

# rspamd's X-Spamd-Result starts "default: True [score / required]" when it judged spam.
_RSPAMD_RESULT = re.compile(r"^\s*default\s*:\s*true\b", re.IGNORECASE)


_WORD = re.compile(r"[A-Za-z]+")


def _first_word(value: str | None) -> str:
    """``yes`` of "YES", "Yes, score=7.1 required=5.0 …" or "yes"."""
    match = _WORD.match((value or "").strip())
    return match.group(0).lower() if match else ""


def spam_verdict(mail: InboundMail, policy: Policy | None) -> str | None:
    """The header that marks the message as spam, or ``None`` (also when the policy opts out)."""
    if policy is not None and not policy.document.replies.suppress_on_spam_verdict:
        return None
    if _first_word(mail.header("X-Spam-Flag")) == "yes":
        return "X-Spam-Flag: YES"
    if _first_word(mail.header("X-Spam-Status")) == "yes":
        return "X-Spam-Status: Yes"
    if _first_word(mail.header("X-Spam")) == "yes":
        return "X-Spam: Yes"
    if _RSPAMD_RESULT.match(mail.header("X-Spamd-Result") or ""):
        return "X-Spamd-Result: default: True"
    return None
