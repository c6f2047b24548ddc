"""Every SMTP/LMTP reply mailgate sends, as a named constant, and the one error-to-reply map.

Keeping them in one place (as aiosmtpd's ``statuscodes`` does) makes the promise easy to
audit: ``250`` only from ``accepted``, and every internal failure is ``451 4.3.0`` without
exception text, so the client retries and learns nothing about our internals.
"""

from __future__ import annotations

OK_RECIPIENT = "250 2.1.5 Recipient ok"
NO_RELAY = "550 5.1.1 Recipient not handled here: relaying denied"
BAD_ADDRESS = "501 5.1.3 Bad recipient address syntax"
TEMPFAIL = "451 4.3.0 Temporary failure, message not accepted; please retry"
TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections, please retry later"
TOO_MANY_FROM_PEER = "421 4.7.0 Too many connections from your address, please retry later"
DATA_TIMEOUT = "421 4.4.2 DATA took too long, closing connection"


def accepted(decision: str, decision_id: int | None) -> str:
    """``250`` after the decision and the raw message are committed."""
    return f"250 2.0.0 Ok: {decision} #{decision_id}"


def rejected_in_dialogue(portal_url: str) -> str:
    """``550 5.7.1`` with the WMP pointer, for ``MAILGATE_REJECT_MODE=smtp``."""
    return (
        "550 5.7.1 Email only accepts follow-ups on an existing ticket; open new tickets in "
        f"WMP ({portal_url}): Help Desk tab, Add, Tech Support or Customer Care"
    )
