"""Every SMTP/LMTP reply mailgate sends, as a named constant, and the one error-to-reply map.

Keeping them in one place (as aiosmtpd's ``statuscodes`` does) makes the promise easy to
audit: ``250`` only from ``accepted``, and every internal failure is ``451 4.3.0`` without
exception text, so the client retries and learns nothing about our internals. ``250`` names
the decision by its opaque public id only: the decision name or the row id would tell a
stranger which tickets exist and how many decisions the desk makes. The replies aiosmtpd
itself would send are mapped onto named answers here too (``LIBRARY``), so that a bad address
gets one syntax code and oversize mail ``552 5.3.4``, whichever layer noticed.
"""

from __future__ import annotations

GREETING = "ESMTP ready"  # after "220 <hostname> "; aiosmtpd would name itself and its version
OK = "250 2.0.0 Ok"
OK_SENDER = "250 2.1.0 Sender ok"
OK_RECIPIENT = "250 2.1.5 Recipient ok"
BYE = "221 2.0.0 Bye"
START_DATA = "354 End data with <CR><LF>.<CR><LF>"
NO_RELAY = "550 5.1.1 Recipient not handled here: relaying denied"
BAD_ADDRESS = "501 5.1.3 Bad address syntax"
BAD_SYNTAX = "501 5.5.4 Syntax error in parameters or arguments"
BAD_COMMAND = "500 5.5.2 Syntax error, command unrecognized"
LINE_TOO_LONG = "500 5.5.6 Line too long"
BAD_SEQUENCE = "503 5.5.1 Bad sequence of commands"
TOO_BIG = "552 5.3.4 Message too big for this system"
NOT_IMPLEMENTED = "502 5.5.1 Command not implemented"
TLS_REQUIRED = "530 5.7.0 Must issue a STARTTLS command first"
TLS_UNAVAILABLE = "454 4.7.0 TLS not available"
TEMPFAIL = "451 4.3.0 Temporary failure, message not accepted; please retry"
TOO_MANY_CONNECTIONS = "421 4.7.0 Too many connections, please retry later"
TOO_MANY_FROM_PEER = "421 4.7.0 Too many connections from your address, please retry later"
DATA_TIMEOUT = "421 4.4.2 DATA took too long, closing connection"
DEFAULT_REJECTION = (
    "550 5.7.1 Email only accepts follow-ups on an existing ticket; open new tickets in the "
    "support portal"
)

# aiosmtpd's own replies (aiosmtpd/smtp.py, ``push`` calls), exactly, and ours instead.
LIBRARY = {
    "250 OK": OK,
    "221 Bye": BYE,
    "354 End data with <CR><LF>.<CR><LF>": START_DATA,
    "552 Error: Too much mail data": TOO_BIG,
    "553 5.1.3 Error: malformed address": BAD_ADDRESS,
    "501 Syntax: MAIL FROM: <address>": BAD_ADDRESS,
    "501 Syntax: RCPT TO: <address>": BAD_ADDRESS,
    "500 Error: bad syntax": BAD_COMMAND,
    "500 Command line too long": LINE_TOO_LONG,
    "500 Line too long (see RFC5321 4.5.3.1.6)": LINE_TOO_LONG,
    "500 Error: strict ASCII mode": BAD_COMMAND,
    "501 Syntax: HELO hostname": BAD_SYNTAX,
    "501 Syntax: EHLO hostname": BAD_SYNTAX,
    "501 Syntax: QUIT": BAD_SYNTAX,
    "501 Syntax: RSET": BAD_SYNTAX,
    "501 Syntax: DATA": BAD_SYNTAX,
    "501 Syntax: STARTTLS": BAD_SYNTAX,
    "501 Syntax: VRFY <address>": BAD_SYNTAX,
    "501 Error: SMTPUTF8 takes no arguments": BAD_SYNTAX,
    "501 Error: SMTPUTF8 disabled": BAD_SYNTAX,
    "501 Error: BODY can only be one of 7BIT, 8BITMIME": BAD_SYNTAX,
    "503 Error: nested MAIL command": BAD_SEQUENCE,
    "503 Error: need MAIL command": BAD_SEQUENCE,
    "503 Error: need RCPT command": BAD_SEQUENCE,
    "503 Error: send HELO first": BAD_SEQUENCE,
    "503 Error: send EHLO first": BAD_SEQUENCE,
    "502 EXPN not implemented": NOT_IMPLEMENTED,
    "530 Must issue a STARTTLS command first": TLS_REQUIRED,
    "454 TLS not available": TLS_UNAVAILABLE,
}
# Replies aiosmtpd builds with a variable part (a command name, a size): matched by prefix.
LIBRARY_PREFIXES = (
    ("500 Error: command ", BAD_COMMAND),
    ("500 Error: (", TEMPFAIL),  # an exception's text; never shown to the client
    ("500 Error: Cannot describe error", TEMPFAIL),
    ("555 MAIL FROM parameters not recognized", BAD_SYNTAX),
    ("555 RCPT TO parameters not recognized", BAD_SYNTAX),
    ("555 ", BAD_SYNTAX),
    ("552 Error: message size exceeds fixed maximum", TOO_BIG),
    ("502 Could not VRFY", NOT_IMPLEMENTED),
)


def translate(status: str) -> str:
    """The named answer for a reply aiosmtpd composed; our own answers pass unchanged."""
    if status in LIBRARY:
        return LIBRARY[status]
    for prefix, answer in LIBRARY_PREFIXES:
        if status.startswith(prefix):
            return answer
    return status


def accepted(public_id: str | None) -> str:
    """``250`` after the decision and the raw message are committed; the id is opaque."""
    return f"250 2.0.0 Ok: queued as {public_id or 'unknown'}"


def rejected_in_dialogue(text: str | list[str] | None) -> str:
    """``550 5.7.1`` with the policy's text for the decision, for ``MAILGATE_REJECT_MODE=smtp``;
    a list is one reply line per element (RFC 5321 multi-line reply)."""
    lines = [text] if isinstance(text, str) else list(text or [])
    if not lines:
        return DEFAULT_REJECTION
    return "\r\n".join([f"550-5.7.1 {line}" for line in lines[:-1]] + [f"550 5.7.1 {lines[-1]}"])
