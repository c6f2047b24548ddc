"""SMTP and LMTP ingress on aiosmtpd: RCPT policing, then one gateway call per message.

The handler holds the protocol only. ``RCPT`` accepts only the support domains (never a
relay); ``DATA`` hands the raw bytes and the envelope to the gateway
(``worker.ingress.gateway``), which decides in a worker thread and returns only once the
raw message and its decision are committed, and the outcome becomes the reply by the SMTP
table (``worker.ingress.answers``): ``250`` with the opaque id, ``550 5.7.1`` for a
rejection in the dialogue, ``451 4.3.0`` for any failure. LMTP answers once per accepted
recipient, all with the outcome of the single decision.
"""

from __future__ import annotations

from typing import Any

import structlog

from worker.clock import utcnow
from worker.decision import Channel
from worker.ingress import answers
from worker.ingress.gateway import Gateway
from worker.mail import Envelope, domain_of, normalize_address

log = structlog.get_logger("mailgate.smtp")


class GateHandler:
    """The aiosmtpd handler shared by every session of one listener."""

    def __init__(self, gateway: Gateway, channel: Channel) -> None:
        self.gateway = gateway
        self.channel = channel
        # MAILGATE_REJECT_MODE=smtp: rejections are refused in the dialogue (SPEC).
        self.in_dialogue = gateway.settings.reject_mode == "smtp"

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        # Same check and answer as RCPT: one syntax code for a bad address, wherever it is.
        if address not in ("", "<>") and not normalize_address(address):  # <>: null sender
            return answers.BAD_ADDRESS
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return answers.OK_SENDER

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        normalized = normalize_address(address)
        if not normalized:
            return answers.BAD_ADDRESS
        if domain_of(normalized) not in self.gateway.support_domains():
            return answers.NO_RELAY
        envelope.rcpt_tos.append(address)
        return answers.OK_RECIPIENT

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        count = len(envelope.rcpt_tos) if self.channel == Channel.LMTP else 1
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):  # only if decode_data were ever turned on
            raw = raw.encode("utf-8", "surrogateescape")
        mail_from = normalize_address(envelope.mail_from or "")
        rcpts = tuple(a for a in (normalize_address(r) for r in envelope.rcpt_tos) if a)
        inbound = Envelope(
            mail_from=mail_from, rcpt_tos=rcpts, channel=self.channel, received_at=utcnow()
        )
        outcome = await self.gateway.submit(raw, inbound, reject_in_dialogue=self.in_dialogue)
        return _repeat(answers.smtp_answer(self.gateway.policies, outcome), count)

    async def handle_PROXY(self, server: Any, session: Any, envelope: Any, proxy_data: Any) -> bool:
        """With MAILGATE_PROXY_PROTOCOL, a valid PROXY header admits the session."""
        return bool(proxy_data and proxy_data.valid)

    async def handle_exception(self, error: Exception) -> str:
        # Never leak exception text to the client; the log has it.
        log.error("smtp_session_error", error_type=type(error).__name__)
        return answers.TEMPFAIL


def _repeat(line: str, count: int) -> str:
    """LMTP (RFC 2033 4.2) wants one reply per accepted recipient after DATA."""
    return "\r\n".join([line] * max(count, 1))
