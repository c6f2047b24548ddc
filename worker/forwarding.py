"""Handing accepted follow-ups to the ticket system: by mail, by signed webhook, or both.

The forwarded mail carries the original message unchanged as a ``message/rfc822`` part, so
the ticket system sees exactly what the customer sent; ``X-Mailgate-Ticket`` and
``X-Mailgate-Decision`` tell it where the message belongs. The webhook body is JSON with the
ticket, the parsed fields and the raw message in base64, signed with HMAC-SHA256 in the
``X-Mailgate-Signature`` header so the receiver can check it came from us, unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

from worker.clock import utcnow
from worker.decision import Decision
from worker.mail import InboundMail

SIGNATURE_HEADER = "X-Mailgate-Signature"


def forward_mail(
    decision: Decision, mail: InboundMail, to: str, sender: str, domain: str
) -> tuple[bytes, str]:
    """The forward as bytes, and its Message-ID.

    Assembled by hand so that the original bytes are attached exactly as received (only
    line endings are made CRLF, as SMTP requires); a random boundary cannot occur in them.
    """
    head = EmailMessage()
    head["From"] = sender
    head["To"] = to
    head["Subject"] = f"[Ticket#{decision.ticket}] follow-up: {mail.subject[:200]}"
    head["Date"] = format_datetime(utcnow())
    message_id = make_msgid("fwd", domain=domain)
    head["Message-ID"] = message_id
    head["Auto-Submitted"] = "auto-forwarded"
    head["X-Mailgate-Ticket"] = decision.ticket or ""
    head["X-Mailgate-Decision"] = decision.decision
    head["MIME-Version"] = "1.0"
    boundary = f"mailgate-{secrets.token_hex(16)}"
    head["Content-Type"] = f'multipart/mixed; boundary="{boundary}"'
    header_bytes = head.as_bytes(policy=SMTP).split(b"\r\n\r\n", 1)[0]
    note = (
        f"Follow-up on ticket {decision.ticket} from {decision.envelope_from or '<>'}, "
        f"received {decision.received_at.isoformat()} under policy {decision.policy}.\r\n"
        "The original message is attached unchanged.\r\n"
    ).encode()
    original = b"\r\n".join(mail.raw.replace(b"\r\n", b"\n").split(b"\n"))
    if not original.endswith(b"\r\n"):
        original += b"\r\n"
    parts = [
        header_bytes,
        b"\r\n\r\n",
        f"--{boundary}\r\n".encode(),
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n",
        note,
        f"--{boundary}\r\n".encode(),
        b"Content-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n",
        original,
        f"--{boundary}--\r\n".encode(),
    ]
    return b"".join(parts), message_id


def webhook_body(decision: Decision, mail: InboundMail) -> bytes:
    payload = {
        "ticket": decision.ticket,
        "decision": decision.decision,
        "policy": decision.policy,
        "message_id": decision.message_id,
        "envelope_from": decision.envelope_from,
        "from": mail.from_address,
        "subject": mail.subject,
        "received_at": decision.received_at.isoformat(),
        "raw_sha256": decision.raw_sha256,
        "raw_base64": base64.b64encode(mail.raw).decode("ascii"),
    }
    return json.dumps(payload, sort_keys=True).encode()


def sign(body: bytes, secret: bytes) -> str:
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
