"""Automatic replies as RFC 3834 and RFC 5230 require: when to send one, and what it says.

``plan_reply`` decides whether a decision gets an answer and why not; ``build_reply``
renders it. A reply goes to the envelope sender only, with ``MAIL FROM:<>`` on the wire,
``Auto-Submitted: auto-replied``, threading headers and a fresh Message-ID in our domain
(so our own replies are recognised as loops if they ever come back). The body comes from
the policy's template and never quotes the inbound text; the only inbound value it carries
is the subject, stripped of control characters so it cannot add a header, and the
display name of the customer's From. The text is in the language ``worker.reply_language``
chose (``Content-Language`` says which), as plain text and as HTML made from it.
"""

from __future__ import annotations

import quopri
import re
from email.header import Header, decode_header, make_header
from email.utils import format_datetime, formataddr, getaddresses, make_msgid, quote

from worker.authentication import sender_authenticated
from worker.catalogues import DEFAULT, NO_SUBJECT, text
from worker.clock import utcnow
from worker.decision import Channel, DecisionName, ReplyPlan, ReplyReason, ReplyStatus
from worker.hints import matching
from worker.mail import (
    InboundMail,
    clean_text,
    domain_of,
    message_ids,
    normalize_address,
    wire_address,
)
from worker.policy.document import Policy
from worker.reply_body import ReplyBody, compose

NO_REPLY_DECISIONS: dict[str, ReplyReason] = {
    DecisionName.IGNORED_AUTO_GENERATED: ReplyReason.AUTO_GENERATED,
    DecisionName.DUPLICATE: ReplyReason.DUPLICATE,
    DecisionName.QUARANTINED: ReplyReason.QUARANTINED,
}
ADDRESS_HEADERS = ("To", "Cc", "Bcc", "Resent-To", "Resent-Cc", "Resent-Bcc")
# Fixed, so two replies differ only where their text does; "=_" cannot occur in
# quoted-printable, and a 7-bit part is checked not to hold it.
BOUNDARY = "=_mailgate_alternative"
_SAFE_MSGID = re.compile(r"^<[\x21-\x3b\x3d\x3f-\x7e]{1,250}@[A-Za-z0-9.\-\[\]:]{1,250}>$")


# One face for both: a stranger probing ticket numbers learns nothing from the reply.
NOT_A_FOLLOWUP = (DecisionName.REJECTED_UNKNOWN_TICKET, DecisionName.REJECTED_UNAUTHORIZED_SENDER)
NOT_A_FOLLOWUP_REASON = ReplyReason.REJECTED_NOT_A_FOLLOWUP


def plan_reply(
    decision: str,
    mail: InboundMail,
    envelope_from: str,
    recipients: list[str],
    policy: Policy | None,
    support_domains: list[str],
    channel: Channel,
    trusted_authserv_id: str | None = None,
) -> ReplyPlan:
    if decision in NO_REPLY_DECISIONS:
        return ReplyPlan(ReplyStatus.SUPPRESSED, NO_REPLY_DECISIONS[decision])
    if policy is None or decision not in policy.templates:
        return ReplyPlan(ReplyStatus.SUPPRESSED, ReplyReason.NO_REPLY_FOR_DECISION)
    if channel == Channel.REPLAY:
        return ReplyPlan(ReplyStatus.SUPPRESSED, ReplyReason.REPLAY)
    if not envelope_from:
        return ReplyPlan(ReplyStatus.SUPPRESSED, ReplyReason.NULL_SENDER)
    suppress = {
        w.strip() for w in (mail.header("X-Auto-Response-Suppress") or "").lower().split(",")
    }
    if suppress & {"all", "autoreply", "oof"}:
        return ReplyPlan(ReplyStatus.SUPPRESSED, ReplyReason.X_AUTO_RESPONSE_SUPPRESS)
    if not any(domain_of(r) in support_domains for r in recipients):
        return ReplyPlan(ReplyStatus.SUPPRESSED, ReplyReason.NO_SUPPORT_RECIPIENT)
    # RFC 5230 4.5: answer only mail that names us in its header, not lists or blind copies.
    addressed = mail.addresses(*ADDRESS_HEADERS)
    if not any(domain_of(a) in support_domains for a in addressed):
        return ReplyPlan(ReplyStatus.SUPPRESSED, ReplyReason.NOT_ADDRESSED_TO_SUPPORT)
    if trusted_authserv_id and not sender_authenticated(mail, envelope_from, trusted_authserv_id):
        # Backscatter guard: a forged envelope sender would receive our reply.
        return ReplyPlan(ReplyStatus.SUPPRESSED, ReplyReason.UNAUTHENTICATED_SENDER)
    # The twins share one rate-limit slot too: a reply to one probe and silence after the
    # next would tell which kind each ticket number is.
    reason = NOT_A_FOLLOWUP_REASON if decision in NOT_A_FOLLOWUP else ReplyReason(decision)
    return ReplyPlan(ReplyStatus.QUEUED, reason, envelope_from)


def _header(name: str, value: str) -> bytes:
    """One header line, folded and RFC 2047-encoded where needed (CRLF line ends)."""
    charset = "us-ascii" if value.isascii() else "utf-8"
    encoded = Header(value, charset, header_name=name).encode(linesep="\r\n")
    return f"{name}: {encoded}\r\n".encode("ascii")


def _address_header(name: str, address: str) -> bytes:
    """An address header; a non-ASCII local part is written as UTF-8 (RFC 6532), which the
    dispatcher then sends with SMTPUTF8. The domain is already an A-label."""
    return f"{name}: {address}\r\n".encode()


def _decoded(value: str) -> str:
    try:
        return str(make_header(decode_header(value)))
    except Exception:  # a broken encoded-word: no name rather than a garbled one
        return ""


def _recipient_header(recipient: str, mail: InboundMail) -> bytes:
    """``To:`` the envelope sender, with the display name the customer's From gives that
    address (RFC 2047-encoded when it is not ASCII)."""
    address = wire_address(recipient)
    name = ""
    for display, addr in getaddresses(mail.header_raw_all("From")):
        if normalize_address(addr) == normalize_address(recipient):
            name = clean_text(_decoded(display), 64).strip()
            break
    if not name:
        return _address_header("To", address)
    if name.isascii():
        # Quoted when it holds specials, or text a reader would decode as an encoded word.
        plain = re.fullmatch(r"[\w !#$%&'*+/=?^`{|}~-]+", name) and "=?" not in name
        shown = name if plain else f'"{quote(name)}"'
        fold = "\r\n " if len(f"To: {shown} <{address}>") > 78 else " "
        return f"To: {shown}{fold}<{address}>\r\n".encode()
    encoded = Header(name, "utf-8", header_name="To").encode(linesep="\r\n")
    return f"To: {encoded}\r\n <{address}>\r\n".encode()


def _part(content_type: str, text: str, force_qp: bool = False) -> bytes:
    """One MIME part: 7-bit when the text is short-lined ASCII, else quoted-printable
    (which also guarantees no line of the part reads as the boundary)."""
    data = text.replace("\r\n", "\n").encode("utf-8")
    head = f'Content-Type: {content_type}; charset="utf-8"\r\n'
    if not force_qp and text.isascii() and BOUNDARY not in text:
        body, encoding = data, "7bit"
    else:
        body, encoding = quopri.encodestring(data), "quoted-printable"
    body = body.replace(b"\n", b"\r\n")
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return (head + f"Content-Transfer-Encoding: {encoding}\r\n\r\n").encode("ascii") + body


def _mime(reply: ReplyBody) -> bytes:
    """Headers from MIME-Version on, and the multipart/alternative body: text first."""
    languages = ", ".join(reply.languages)
    head = (
        "MIME-Version: 1.0\r\n"
        f"Content-Language: {languages}\r\n"
        f'Content-Type: multipart/alternative; boundary="{BOUNDARY}"\r\n\r\n'
    ).encode("ascii")
    delimiter = f"--{BOUNDARY}\r\n".encode("ascii")
    return (
        head
        + delimiter
        + _part("text/plain", reply.plain)
        + delimiter
        + _part("text/html", reply.html, force_qp=True)
        + f"--{BOUNDARY}--\r\n".encode("ascii")
    )


def build_reply(
    *,
    decision: str,
    mail: InboundMail,
    recipient: str,
    policy: Policy,
    support_domains: list[str],
    ticket: str | None,
    language: str = DEFAULT,
    reference: str = "",
) -> tuple[bytes, str]:
    """The reply as wire bytes, and its Message-ID.

    Assembled directly rather than through ``EmailMessage``'s header registry, which costs
    milliseconds per reply; every inbound value that reaches a header has already been
    stripped of control characters, and the Message-IDs are checked against a strict form.
    No header or line names the decision: those names are ours, not the customer's.
    """
    subject = clean_text(mail.subject, 200)
    if decision in NOT_A_FOLLOWUP or decision == DecisionName.HELD:
        ticket = None  # nothing that tells an unknown ticket from somebody else's
    hints = matching(policy, decision, mail)
    values = {"ticket": ticket or "", "subject": subject, "reference": reference}
    reply = compose(policy, decision, language, values, hints)
    doc = policy.document
    domain = support_domains[0]
    message_id = make_msgid("auto", domain=domain)
    sender = formataddr((doc.replies.from_name, f"{doc.support_local_part}@{domain}"), "utf-8")
    fallback = text(reply.sections[0].language, NO_SUBJECT)
    lines = [
        f"From: {sender}\r\n".encode("ascii"),
        _recipient_header(recipient, mail),
        _header("Subject", f"Auto: {subject or fallback}"),
        f"Date: {format_datetime(utcnow())}\r\n".encode("ascii"),
        f"Message-ID: {message_id}\r\n".encode("ascii"),
        b"Auto-Submitted: auto-replied\r\n",
        b"X-Auto-Response-Suppress: All\r\n",
    ]
    original = mail.message_id if mail.message_id and _SAFE_MSGID.match(mail.message_id) else None
    if original:
        references = [m for m in message_ids(mail.header("References")) if _SAFE_MSGID.match(m)]
        lines.append(f"In-Reply-To: {original}\r\n".encode("ascii"))
        chain = [*references[-10:], original]
        lines.append(("References: " + "\r\n ".join(chain) + "\r\n").encode("ascii"))
    return b"".join(lines) + _mime(reply), message_id
