"""Automatic replies as RFC 3834 and RFC 5230 require: when to send one, and what it says.

``plan_reply`` decides whether a decision gets an answer and why not; ``build_reply``
renders it. A reply goes to the envelope sender only, with ``MAIL FROM:<>`` on the wire,
``Auto-Submitted: auto-replied``, threading headers and a fresh Message-ID in our domain
(so our own replies are recognised as loops if they ever come back). The body comes from
the policy's template and never quotes the inbound text; the only inbound value it carries
is the subject, stripped of control characters so it cannot add a header.
"""

from __future__ import annotations

import quopri
import re
from email.header import Header
from email.utils import format_datetime, formataddr, make_msgid

from worker.authentication import sender_authenticated
from worker.clock import utcnow
from worker.decision import Channel, DecisionName, ReplyPlan, ReplyReason, ReplyStatus
from worker.mail import InboundMail, clean_text, domain_of, message_ids, wire_address
from worker.policy.document import Policy

NO_REPLY_DECISIONS: dict[str, ReplyReason] = {
    DecisionName.IGNORED_AUTO_GENERATED: ReplyReason.AUTO_GENERATED,
    DecisionName.DUPLICATE: ReplyReason.DUPLICATE,
    DecisionName.QUARANTINED: ReplyReason.QUARANTINED,
}
ADDRESS_HEADERS = ("To", "Cc", "Bcc", "Resent-To", "Resent-Cc", "Resent-Bcc")
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


def build_reply(
    *,
    decision: str,
    mail: InboundMail,
    recipient: str,
    policy: Policy,
    support_domains: list[str],
    ticket: str | None,
) -> tuple[bytes, str]:
    """The reply as wire bytes, and its Message-ID.

    Assembled directly rather than through ``EmailMessage``'s header registry, which costs
    milliseconds per reply; every inbound value that reaches a header has already been
    stripped of control characters, and the Message-IDs are checked against a strict form.
    """
    subject = clean_text(mail.subject, 200)
    if decision in NOT_A_FOLLOWUP:
        ticket = None  # nothing that tells an unknown ticket from somebody else's
    body = policy.render(decision, ticket=ticket or "", subject=subject)
    assert body is not None
    doc = policy.document
    domain = support_domains[0]
    message_id = make_msgid("auto", domain=domain)
    sender = formataddr((doc.replies.from_name, f"{doc.support_local_part}@{domain}"), "utf-8")
    lines = [
        f"From: {sender}\r\n".encode("ascii"),
        _address_header("To", wire_address(recipient)),
        _header("Subject", f"Auto: {subject}" if subject else "Auto: your message to support"),
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
    shown = NOT_A_FOLLOWUP_REASON if decision in NOT_A_FOLLOWUP else decision
    lines.append(f"X-Mailgate-Decision: {shown}\r\n".encode("ascii"))
    lines.append(b"MIME-Version: 1.0\r\n")
    lines.append(b'Content-Type: text/plain; charset="utf-8"\r\n')
    text = body.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")
    if body.isascii():
        # Plain 7-bit text stays readable in the spool; anything else is quoted-printable.
        lines.append(b"Content-Transfer-Encoding: 7bit\r\n")
    else:
        lines.append(b"Content-Transfer-Encoding: quoted-printable\r\n")
        text = quopri.encodestring(text.replace(b"\r\n", b"\n")).replace(b"\n", b"\r\n")
    if not text.endswith(b"\r\n"):
        text += b"\r\n"
    return b"".join(lines) + b"\r\n" + text, message_id
