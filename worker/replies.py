"""Automatic replies as RFC 3834 and RFC 5230 require: when to send one, and what it says.

``plan_reply`` decides whether a decision gets an answer and why not; ``build_reply``
renders it. A reply goes to the envelope sender only, with ``MAIL FROM:<>`` on the wire,
``Auto-Submitted: auto-replied``, threading headers and a fresh Message-ID in our domain
(so our own replies are recognised as loops if they ever come back). The body comes from
the policy's template and never quotes the inbound text; the only inbound value it carries
is the subject, stripped of control characters so it cannot add a header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from worker.authentication import sender_authenticated
from worker.clock import utcnow
from worker.mail import InboundMail, clean_text, domain_of, message_ids
from worker.policy.document import Policy

NO_REPLY_DECISIONS = {
    "ignored_auto_generated": "auto_generated",
    "duplicate": "duplicate",
    "quarantined": "quarantined",
}
ADDRESS_HEADERS = ("To", "Cc", "Bcc", "Resent-To", "Resent-Cc", "Resent-Bcc")
_SAFE_MSGID = re.compile(r"^<[\x21-\x3b\x3d\x3f-\x7e]{1,250}@[A-Za-z0-9.\-\[\]:]{1,250}>$")


@dataclass(frozen=True)
class ReplyPlan:
    """``status`` is ``queued`` (subject to the rate limit at commit) or ``suppressed``."""

    status: str
    reason: str | None
    recipient: str | None = None


def plan_reply(
    decision: str,
    mail: InboundMail,
    envelope_from: str,
    recipients: list[str],
    policy: Policy | None,
    support_domains: list[str],
    channel: str,
    trusted_authserv_id: str | None = None,
) -> ReplyPlan:
    if decision in NO_REPLY_DECISIONS:
        return ReplyPlan("suppressed", NO_REPLY_DECISIONS[decision])
    if policy is None or decision not in policy.templates:
        return ReplyPlan("suppressed", "no_reply_for_decision")
    if channel == "replay":
        return ReplyPlan("suppressed", "replay")
    if not envelope_from:
        return ReplyPlan("suppressed", "null_sender")
    suppress = {
        w.strip() for w in (mail.header("X-Auto-Response-Suppress") or "").lower().split(",")
    }
    if suppress & {"all", "autoreply", "oof"}:
        return ReplyPlan("suppressed", "x_auto_response_suppress")
    if not any(domain_of(r) in support_domains for r in recipients):
        return ReplyPlan("suppressed", "no_support_recipient")
    # RFC 5230 4.5: answer only mail that names us in its header, not lists or blind copies.
    addressed = mail.addresses(*ADDRESS_HEADERS)
    if not any(domain_of(a) in support_domains for a in addressed):
        return ReplyPlan("suppressed", "not_addressed_to_support")
    if trusted_authserv_id and not sender_authenticated(mail, envelope_from, trusted_authserv_id):
        # Backscatter guard: a forged envelope sender would receive our reply.
        return ReplyPlan("suppressed", "unauthenticated_sender")
    return ReplyPlan("queued", decision, envelope_from)


def build_reply(
    *,
    decision: str,
    mail: InboundMail,
    recipient: str,
    policy: Policy,
    support_domains: list[str],
    ticket: str | None,
) -> EmailMessage:
    subject = clean_text(mail.subject, 200)
    body = policy.render(decision, ticket=ticket or "", subject=subject)
    assert body is not None
    doc = policy.document
    domain = support_domains[0]
    reply = EmailMessage()
    reply["From"] = Address(doc.replies.from_name, doc.support_local_part, domain)
    reply["To"] = recipient
    reply["Subject"] = f"Auto: {subject}" if subject else "Auto: your message to support"
    reply["Date"] = format_datetime(utcnow())
    reply["Message-ID"] = make_msgid("auto", domain=domain)
    reply["Auto-Submitted"] = "auto-replied"
    reply["X-Auto-Response-Suppress"] = "All"
    original = mail.message_id if mail.message_id and _SAFE_MSGID.match(mail.message_id) else None
    if original:
        references = [m for m in message_ids(mail.header("References")) if _SAFE_MSGID.match(m)]
        reply["In-Reply-To"] = original
        reply["References"] = " ".join([*references[-10:], original])
    reply["X-Mailgate-Decision"] = decision
    # Plain 7-bit text stays readable in the spool; anything else is quoted-printable.
    reply.set_content(body, charset="utf-8", cte="7bit" if body.isascii() else "quoted-printable")
    return reply
