"""mailgate's SMTP and LMTP protocol classes: aiosmtpd's, plus the limits a public MX needs.

aiosmtpd closes a session after ``timeout`` seconds of silence, but a client trickling one
byte at a time never goes silent. Here ``DATA`` also has an overall deadline, and
connections are counted globally and per client address, so that a few slow or greedy
clients cannot starve everyone else. As in Postfix, NOOP, RSET and VRFY are junk: past
``junk_limit`` of them in a session (one while the listener is over 80% of its cap) the
session is closed, and a nearly full listener's idle timeout is its stress timeout, so ten
addresses holding twenty idle connections each cannot lock everyone else out. A stopping
server closes every session that is not deciding. Refusals are ``421`` and the connection
is closed, so a well-behaved MTA retries later. The DATA phase itself is read into one buffer by
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
from worker.ingress.connections import STRESS_SHARE, RefusalLog
from worker.ingress.data_phase import OneBufferData
from worker.ingress.smtp_address import AddressReader
from worker.settings import Settings

log = structlog.get_logger("mailgate.smtp")


@dataclass
class ConnectionLimits:
    """Shared by every session of one listener."""

    max_connections: int = 200
    max_per_peer: int = 20
    data_timeout: float = 600.0
    junk_limit: int = 100
    stress_idle: float = 10.0
    active: int = 0
    per_peer: Counter[str] = field(default_factory=Counter)
    sessions: set[LimitedMixin] = field(default_factory=set)
    refusals: RefusalLog = field(default_factory=lambda: RefusalLog("smtp_connection_refused"))

    @classmethod
    def for_listener(cls, settings: Settings, cap: int) -> ConnectionLimits:
        """The limits of one SMTP/LMTP listener whose cap ``serve`` fitted to the file limit."""
        return cls(
            max_connections=cap,
            max_per_peer=min(settings.smtp_max_connections_per_ip, cap),
            data_timeout=settings.smtp_data_timeout,
            junk_limit=settings.smtp_junk_command_limit,
            stress_idle=settings.stress_idle_timeout,
        )

    def stressed(self) -> bool:
        return self.active >= STRESS_SHARE * self.max_connections

    def shut_down(self) -> None:
        """A stopping server: every session that is not deciding is told 421 and closed."""
        for session in list(self.sessions):
            session.shut_down()

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
    _junk = 0
    _deciding = False

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
                self.limits.refusals.note(reason=refusal[4:40])
                transport.write(refusal.encode() + b"\r\n")
                transport.close()
                return
            self._peer_key = peer
            self.limits.sessions.add(self)
        super().connection_made(transport)  # type: ignore[misc]

    def connection_lost(self, error: Exception | None) -> None:
        if self._refused:
            return
        if self._peer_key is not None:
            self.limits.release(self._peer_key)
            self._peer_key = None
        self.limits.sessions.discard(self)
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

    @syntax("NOOP [ignored]")
    async def smtp_NOOP(self, arg: str) -> None:
        if await self._junk_allowed():
            await super().smtp_NOOP(arg)  # type: ignore[misc]

    @syntax("RSET")
    async def smtp_RSET(self, arg: str) -> None:
        if await self._junk_allowed():
            await super().smtp_RSET(arg)  # type: ignore[misc]

    @syntax("VRFY <address>")
    async def smtp_VRFY(self, arg: str) -> None:
        if await self._junk_allowed():
            await super().smtp_VRFY(arg)  # type: ignore[misc]

    async def _junk_allowed(self) -> bool:
        """Count one junk command; past the limit the session is told 421 and closed."""
        self._junk += 1
        if self._junk <= (1 if self.limits.stressed() else self.limits.junk_limit):
            return True
        await self.push(answers.TOO_MUCH_JUNK)
        transport = getattr(self, "transport", None)
        if transport is not None:
            transport.close()
        return False

    async def _call_handler_hook(self, command: str, *args: Any) -> Any:
        if command != "DATA":
            return await super()._call_handler_hook(command, *args)  # type: ignore[misc]
        self._deciding = True  # a stopping server lets this session answer first
        try:
            return await super()._call_handler_hook(command, *args)  # type: ignore[misc]
        finally:
            self._deciding, self._junk = False, 0

    def _reset_timeout(self, duration: float | None = None) -> None:
        if duration is None and self.limits.stressed():
            duration = self.limits.stress_idle
        super()._reset_timeout(duration)  # type: ignore[misc]

    def shut_down(self) -> None:
        transport = getattr(self, "transport", None)
        if self._deciding or transport is None or transport.is_closing():
            return
        transport.write(answers.SHUTTING_DOWN.encode() + b"\r\n")
        transport.close()

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


class GateSMTP(LimitedMixin, AddressReader, OneBufferData, SMTP):
    def __init__(self, *args: Any, limits: ConnectionLimits, **kwargs: Any) -> None:
        self.limits = limits
        kwargs.setdefault("ident", answers.GREETING)  # not aiosmtpd's name and version
        super().__init__(*args, **kwargs)


class GateLMTP(LimitedMixin, AddressReader, OneBufferData, LMTP):
    def __init__(self, *args: Any, limits: ConnectionLimits, **kwargs: Any) -> None:
        self.limits = limits
        kwargs.setdefault("ident", answers.GREETING)
        super().__init__(*args, **kwargs)
