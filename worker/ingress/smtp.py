"""SMTP and LMTP ingress on aiosmtpd: RCPT policing, then one pipeline call per message.

The handler is thin. ``RCPT`` accepts only the support domains (never a relay); ``DATA``
hands the raw bytes to ``Mailgate.ingest`` in a worker thread (parsing and the database stay
off the event loop) and answers ``250`` only once that call returned, which means the raw
message and its decision are committed. Any failure answers ``451 4.3.0``. LMTP answers
once per accepted recipient, all with the outcome of the single decision.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

import structlog

from worker.clock import utcnow
from worker.ingress import answers
from worker.ingress.in_flight import InFlight
from worker.mail import Envelope, domain_of, normalize_address
from worker.metrics import TEMPFAILS
from worker.pipeline import Mailgate
from worker.reject_text import reject_lines

log = structlog.get_logger("mailgate.smtp")


class GateHandler:
    """The aiosmtpd handler shared by every session of one listener."""

    def __init__(
        self,
        gate: Mailgate,
        executor: Executor,
        channel: str,
        on_outbox: Callable[[], None] | None = None,
    ) -> None:
        self.gate = gate
        self.on_outbox = on_outbox
        self.executor = executor
        self.channel = channel
        self.in_flight = InFlight()

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
        domains = self.gate.support_domains(self.gate.policies.in_force(utcnow()))
        if domain_of(normalized) not in domains:
            return answers.NO_RELAY
        envelope.rcpt_tos.append(address)
        return answers.OK_RECIPIENT

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        count = len(envelope.rcpt_tos) if self.channel == "lmtp" else 1
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):  # only if decode_data were ever turned on
            raw = raw.encode("utf-8", "surrogateescape")
        mail_from = normalize_address(envelope.mail_from or "")
        rcpts = tuple(a for a in (normalize_address(r) for r in envelope.rcpt_tos) if a)
        inbound = Envelope(
            mail_from=mail_from, rcpt_tos=rcpts, channel=self.channel, received_at=utcnow()
        )
        in_dialogue = self.gate.settings.reject_mode == "smtp"
        try:
            with self.in_flight.deciding():
                decision = await asyncio.get_running_loop().run_in_executor(
                    self.executor,
                    lambda: self.gate.ingest(raw, inbound, reject_in_dialogue=in_dialogue),
                )
        except Exception:
            log.exception("ingest_failed", channel=self.channel)
            TEMPFAILS.labels(channel=self.channel).inc()
            return _repeat(answers.TEMPFAIL, count)
        if decision.outbox_ids and self.gate.needs_dispatch and self.on_outbox is not None:
            self.on_outbox()
        if decision.reply["status"] == "smtp_rejected":
            policy = self.gate.policies.by_id(decision.policy or "")
            lines = reject_lines(policy, decision.decision, decision.reply_language)
            return _repeat(answers.rejected_in_dialogue(lines), count)
        return _repeat(answers.accepted(decision.public_id), count)

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
