"""mailgate's SMTP and LMTP protocol classes: aiosmtpd's, plus the limits a public MX needs.

aiosmtpd closes a session after ``timeout`` seconds of silence, but a client trickling one
byte at a time never goes silent. Here ``DATA`` also has an overall deadline, and
connections are counted globally and per client address, so that a few slow or greedy
clients cannot starve everyone else. Refusals are ``421`` and the connection is closed,
so a well-behaved MTA retries later. The DATA phase itself is read into one buffer by
``OneBufferData`` (``worker.ingress.data_phase``) rather than aiosmtpd's list of lines.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, syntax

from worker.ingress import answers
from worker.ingress.data_phase import OneBufferData

log = structlog.get_logger("mailgate.smtp")


@dataclass
class ConnectionLimits:
    """Shared by every session of one listener."""

    max_connections: int = 200
    max_per_peer: int = 20
    data_timeout: float = 600.0
    active: int = 0
    per_peer: Counter[str] = field(default_factory=Counter)

    def admit(self, peer: str) -> str | None:
        """None when the connection may proceed, else the refusal to send."""
        if self.active >= self.max_connections:
            return answers.TOO_MANY_CONNECTIONS
        if self.per_peer[peer] >= self.max_per_peer:
            return answers.TOO_MANY_FROM_PEER
        self.active += 1
        self.per_peer[peer] += 1
        return None

    def release(self, peer: str) -> None:
        self.active -= 1
        self.per_peer[peer] -= 1
        if self.per_peer[peer] <= 0:
            del self.per_peer[peer]


class LimitedMixin:
    """Admission control and a DATA deadline around aiosmtpd's protocol."""

    limits: ConnectionLimits
    _peer_key: str | None = None
    _refused = False

    def connection_made(self, transport: Any) -> None:
        first = (
            getattr(self, "_original_transport", None) is None
            and getattr(self, "transport", None) is None
        )
        if first:  # not the re-entry after STARTTLS
            peername = transport.get_extra_info("peername")
            peer = str(peername[0]) if peername else "?"
            refusal = self.limits.admit(peer)
            if refusal is not None:
                self._refused = True
                log.warning("smtp_connection_refused", reason=refusal[4:40])
                transport.write(refusal.encode() + b"\r\n")
                transport.close()
                return
            self._peer_key = peer
        super().connection_made(transport)  # type: ignore[misc]

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        if self._peer_key is not None:
            self.limits.release(self._peer_key)
            self._peer_key = None
        super().connection_lost(error)  # type: ignore[misc]

    def eof_received(self) -> bool | None:
        if self._refused:
            return False
        return super().eof_received()  # type: ignore[misc]

    @syntax("DATA")  # an override without it would drop DATA from HELP
    async def smtp_DATA(self, arg: str) -> None:
        # A watchdog rather than wait_for: aiosmtpd closes the stream when DATA is
        # cancelled, and the client should first hear why.
        deadline = asyncio.get_running_loop().call_later(
            self.limits.data_timeout, self._data_expired
        )
        try:
            await super().smtp_DATA(arg)  # type: ignore[misc]
        finally:
            deadline.cancel()

    async def push(self, status: Any) -> None:
        # aiosmtpd composes some replies itself (oversize, bad syntax, sequence errors);
        # they leave as the named answers of worker.ingress.answers.
        if isinstance(status, str):
            status = answers.translate(status)
        await super().push(status)  # type: ignore[misc]

    def _data_expired(self) -> None:
        transport = getattr(self, "transport", None)
        if transport is None or transport.is_closing():
            return
        log.warning("smtp_data_timeout", seconds=self.limits.data_timeout)
        transport.write(answers.DATA_TIMEOUT.encode() + b"\r\n")
        transport.close()


class GateSMTP(LimitedMixin, OneBufferData, SMTP):
    def __init__(self, *args: Any, limits: ConnectionLimits, **kwargs: Any) -> None:
        self.limits = limits
        kwargs.setdefault("ident", answers.GREETING)  # not aiosmtpd's name and version
        super().__init__(*args, **kwargs)


class GateLMTP(LimitedMixin, OneBufferData, LMTP):
    def __init__(self, *args: Any, limits: ConnectionLimits, **kwargs: Any) -> None:
        self.limits = limits
        kwargs.setdefault("ident", answers.GREETING)
        super().__init__(*args, **kwargs)
