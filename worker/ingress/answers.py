"""Every answer mailgate gives a sender: the SMTP/LMTP replies as named constants, and one
table per protocol from a decision to what that protocol answers.

Keeping them in one place (as aiosmtpd's ``statuscodes`` does) makes the promise easy to
audit: ``250`` only from ``accepted``, and every internal failure is ``451 4.3.0`` without
exception text, so the client retries and learns nothing about our internals. ``250`` names
the decision by its opaque public id only: the decision name or the row id would tell a
stranger which tickets exist and how many decisions the desk makes. The replies aiosmtpd
itself would send are mapped onto named answers here too (``LIBRARY``), so that a bad address
gets one syntax code and oversize mail ``552 5.3.4``, whichever layer noticed. A rejection
in the dialogue has one wording, SMTP reject mode's and the milter's alike: the policy's
``[replies.smtp_reject]`` text for the decision, then the same in the customer's
language (``rejection``).
"""

from __future__ import annotations

from enum import StrEnum

from worker.decision import REJECTIONS, DecisionName, ReplyStatus
from worker.ingress.gateway import Outcome
from worker.policy.document import PolicySet
from worker.reject_text import reject_lines

GREETING = "ESMTP ready"  # after "220 <hostname> "; aiosmtpd would name itself and its version
OK = "250 2.0.0 Ok"
OK_SENDER = "250 2.1.0 Sender ok"
OK_RECIPIENT = "250 2.1.5 Recipient ok"
BYE = "221 2.0.0 Bye"
START_DATA = "354 End data with <CR><LF>.<CR><LF>"
NO_RELAY = "550 5.1.1 Recipient not handled here: relaying denied"
BAD_ADDRESS = "501 5.1.3 Bad address syntax"
# RFC 6531 addresses are UTF-8; other 8-bit octets get a permanent refusal, never a 451 loop.
SENDER_NOT_UTF8 = "553 5.1.7 Sender address is not valid UTF-8"
RECIPIENT_NOT_UTF8 = "553 5.1.3 Recipient address is not valid UTF-8"
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
TOO_MUCH_JUNK = "421 4.7.0 Too many commands without mail, closing connection"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, please retry later"
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


def rejection(policies: PolicySet, outcome: Outcome, *, one_line: bool = False) -> str:
    """The ``550 5.7.1`` reply for a rejected decision, in the SMTP dialogue and the milter's
    reply alike: the text of the policy that decided it, else the default pointer. The
    milter asks for ``one_line``: milter clients other than Postfix (OpenDKIM's
    ``miltertest``) read a multi-line reply code as no reply code at all."""
    decision = outcome.decision
    policy = policies.by_id(decision.policy or "") if decision else None
    name = outcome.answered_as or ""
    # The short text in English, then in the customer's language (worker.reject_text).
    language = decision.reply_language if decision else None
    lines = reject_lines(policy, name, language)
    return rejected_in_dialogue(["; ".join(lines)] if one_line and lines else lines)


class Answer(StrEnum):
    """What becomes of a message, whatever its protocol calls it."""

    ACCEPT = "accept"  # 250 queued as; milter continue with headers; IMAP Processed; exit 0
    REJECT = "reject"  # 550 5.7.1 in the dialogue; IMAP Rejected
    DISCARD = "discard"  # milter discard: the MTA drops it, mailgate has kept it
    QUARANTINE = "quarantine"  # milter quarantine (the MTA's hold queue); IMAP Quarantine
    HOLD = "hold"  # held for an operator: IMAP Held (elsewhere answered as accepted)
    TEMPFAIL = "tempfail"  # nothing committed: 451 4.3.0, milter tempfail, exit 75


def _table(**answers: Answer) -> dict[str, Answer]:
    """A protocol's table: every decision, the rejections one answer."""
    rejected = answers.pop("rejected")
    table: dict[str, Answer] = {str(name): rejected for name in REJECTIONS}
    table.update(answers)
    assert set(table) == set(DecisionName), "every decision has an answer"
    return table


# The milter faces the sending MTA: it refuses, drops automated mail (no reply, no
# delivery), and leaves suspicious mail in the MTA's hold queue.
MILTER = _table(
    accepted_followup=Answer.ACCEPT,
    rejected=Answer.REJECT,
    ignored_auto_generated=Answer.DISCARD,
    duplicate=Answer.DISCARD,
    quarantined=Answer.QUARANTINE,
    held=Answer.DISCARD,  # mailgate keeps it; a release delivers it through the outbox
)
# IMAP answers by the folder a message is moved to once its decision is committed.
IMAP = _table(
    accepted_followup=Answer.ACCEPT,
    rejected=Answer.REJECT,
    ignored_auto_generated=Answer.ACCEPT,
    duplicate=Answer.ACCEPT,
    quarantined=Answer.QUARANTINE,
    held=Answer.HOLD,
)
# SMTP/LMTP accept whatever was committed (the reply, if any, goes by mail), except a
# rejection in the dialogue (MAILGATE_REJECT_MODE=smtp), which ``smtp_answer`` reads from
# the decision's reply.
SMTP = _table(
    accepted_followup=Answer.ACCEPT,
    rejected=Answer.ACCEPT,
    ignored_auto_generated=Answer.ACCEPT,
    duplicate=Answer.ACCEPT,
    quarantined=Answer.ACCEPT,
    held=Answer.ACCEPT,  # like any accepted message: the 250 says nothing of a ticket
)


def answer(
    outcome: Outcome, table: dict[str, Answer], *, held_again: Answer = Answer.QUARANTINE
) -> Answer:
    """The protocol's answer to an outcome: a failure is always TEMPFAIL, and a duplicate
    gets its original's answer, except that a second copy of quarantined mail gets
    ``held_again`` (the milter discards it: its raw bytes are kept already)."""
    name = outcome.answered_as
    if outcome.decision is None or name is None:
        return Answer.TEMPFAIL
    found = table.get(name, Answer.TEMPFAIL)
    if found is Answer.QUARANTINE and outcome.decision.decision == DecisionName.DUPLICATE:
        return held_again
    return found


def smtp_answer(policies: PolicySet, outcome: Outcome) -> str:
    """The SMTP/LMTP reply line for an outcome."""
    decision = outcome.decision
    if decision is None:
        return TEMPFAIL
    if decision.reply.status == ReplyStatus.SMTP_REJECTED:
        return rejection(policies, outcome)
    if answer(outcome, SMTP) is Answer.TEMPFAIL:
        return TEMPFAIL
    return accepted(decision.public_id)
