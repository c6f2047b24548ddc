"""The HTTP listener's connections: capped, and closed when their peer goes quiet.

aiohttp keeps a connection that sends nothing, or half a request line, open for ever (one
was still open after 150 s), and takes as many as the file limit allows. ``GuardedSite``
is aiohttp's ``TCPSite`` with each connection's protocol wrapped in ``GuardedConnection``:
over the cap a connection is closed at once, and one that has sent nothing for the idle
timeout (the stress timeout while the listener is nearly full) is closed, unless a request
of its is being answered. Refusals are logged once per interval, not per connection.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from worker.ingress.connections import STRESS_SHARE, RefusalLog


class ConnectionGuard:
    """The cap and timeouts shared by every connection of one HTTP listener."""

    def __init__(self, cap: int, idle: float, stress_idle: float) -> None:
        self.cap, self.idle, self.stress_idle = cap, idle, stress_idle
        self.open: set[GuardedConnection] = set()
        self.refusals = RefusalLog("connection_refused")

    def timeout(self) -> float:
        return self.stress_idle if len(self.open) >= STRESS_SHARE * self.cap else self.idle


class GuardedConnection(asyncio.Protocol):
    """aiohttp's protocol for one connection, behind the cap and an idle deadline."""

    def __init__(self, inner: Any, guard: ConnectionGuard) -> None:
        self.inner, self.guard = inner, guard
        self.transport: asyncio.Transport | None = None
        self.deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: Any) -> None:
        if len(self.guard.open) >= self.guard.cap:
            self.guard.refusals.note(listener="http", cap=self.guard.cap)
            transport.abort()
            return
        self.transport = transport
        self.guard.open.add(self)
        self.inner.connection_made(transport)
        self._rearm()

    def data_received(self, data: bytes) -> None:
        self._rearm()
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        result: bool | None = self.inner.eof_received()
        return result

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is None:
            return  # refused: aiohttp never saw it
        self.guard.open.discard(self)
        if self.deadline is not None:
            self.deadline.cancel()
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def _rearm(self) -> None:
        if self.deadline is not None:
            self.deadline.cancel()
        loop = asyncio.get_running_loop()
        self.deadline = loop.call_later(self.guard.timeout(), self._expired)

    def _expired(self) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        # A request being answered keeps its connection (a slow API call is no idle peer);
        # aiohttp's own attribute, read defensively: without it the idle rule alone holds.
        if getattr(self.inner, "_current_request", None) is not None:
            self._rearm()
            return
        self.transport.close()


class GuardedSite(web.TCPSite):
    """aiohttp's ``TCPSite`` whose connections pass through ``guard``."""

    def __init__(
        self, runner: web.BaseRunner, host: str, port: int, guard: ConnectionGuard
    ) -> None:
        super().__init__(runner, host, port, reuse_address=True)
        self.guard = guard

    async def start(self) -> None:
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        self._server = await asyncio.get_running_loop().create_server(
            lambda: GuardedConnection(server(), self.guard),
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port
