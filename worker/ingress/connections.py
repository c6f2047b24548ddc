"""How many connections each listener holds and for how long: below the open-file limit.

Before, the milter, HTTP and ingest-socket listeners took every connection and kept an idle
one forever: 1,100 idle milter connections under systemd's 1,024 open files stopped SMTP,
the milter, ``/healthz`` and ``mailgate ingest`` alike. As Postfix does, each listener now
has a cap (``budget`` keeps their sum below the file limit, which ``serve`` first raises to
the hard limit), an idle timeout, and a shorter one while it is nearly full (Postfix's
``${stress?10}``), so idle peers make room for working ones. ``Sessions`` serves the
asyncio stream listeners (milter, ingest socket): a connection over the cap is closed at
once, a read waits at most the idle timeout, and a stopping server ends every session that
is waiting for its peer at once, while one that is deciding finishes and answers first.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import structlog

from worker.settings import Settings

log = structlog.get_logger("mailgate.connections")
T = TypeVar("T")
RESERVED_FILES = 64  # database, log, policy files, outgoing connections, listening sockets
STRESS_SHARE = 0.8  # a listener this full uses its stress timeout
REFUSAL_LOG_SECONDS = 60.0


class SessionEnd(Exception):
    """The peer was idle too long, or the server is stopping: close without an answer."""


def file_budget() -> int:
    """File descriptors the listeners may use: the soft limit, raised to the hard one (the
    unit's ``LimitNOFILE``; systemd's default soft limit is 1,024), less a reserve."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        wanted = 1 << 16 if hard == resource.RLIM_INFINITY else min(hard, 1 << 16)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
            soft = max(soft, wanted)
    return max(soft - RESERVED_FILES, 8)


def listener_caps(settings: Settings, ingest_cap: int = 50) -> dict[str, int]:
    """Each configured listener's connection cap, all of them below the open-file limit."""
    asked = {
        channel: settings.smtp_max_connections
        for channel in ("smtp", "lmtp")
        if settings.listen_address(channel)
    }
    if settings.milter_listen:
        asked["milter"] = settings.milter_max_connections
    if settings.listen_address("http"):
        asked["http"] = settings.http_max_connections
    if settings.ingest_socket_path:
        asked["ingest"] = ingest_cap
    return share(asked, file_budget())


def share(caps: dict[str, int], budget: int) -> dict[str, int]:
    """The caps, scaled down together when their sum would not fit the file budget."""
    total = sum(caps.values())
    if total <= budget:
        return dict(caps)
    scaled = {name: max(1, cap * budget // total) for name, cap in caps.items()}
    log.warning("connection_caps_lowered", file_budget=budget, asked=caps, caps=scaled)
    return scaled


@dataclass
class RefusalLog:
    """'Over the cap' logged once per interval with how many were refused, not per try."""

    event: str
    refused: int = 0
    logged_at: float = field(default=-REFUSAL_LOG_SECONDS)

    def note(self, **fields: object) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self.logged_at >= REFUSAL_LOG_SECONDS:
            log.warning(self.event, refused=self.refused, **fields)
            self.refused, self.logged_at = 0, now


class Sessions:
    """The open connections of one stream listener: capped, idle-limited, stoppable."""

    def __init__(self, name: str, cap: int, idle: float, stress_idle: float) -> None:
        self.name, self.cap, self.idle, self.stress_idle = name, cap, idle, stress_idle
        self.tasks: set[asyncio.Task[None]] = set()
        self.reading: set[asyncio.Task[Any]] = set()  # sessions waiting for their peer
        self.ended: set[asyncio.Task[Any]] = set()
        self.stopping = asyncio.Event()
        self.refusals = RefusalLog("connection_refused")

    def serving(
        self, session: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
    ) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
        """``session`` as a listener callback, admitted only under the cap."""

        async def admitted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            if len(self.tasks) >= self.cap or self.stopping.is_set() or task is None:
                self.refusals.note(listener=self.name, cap=self.cap)
                writer.close()
                return
            self.tasks.add(task)
            try:
                await session(reader, writer)
            except SessionEnd:
                pass
            finally:
                self.tasks.discard(task)
                writer.close()

        return admitted

    def timeout(self) -> float:
        """The idle timeout now: the short one while the listener is nearly full."""
        return self.stress_idle if len(self.tasks) >= STRESS_SHARE * self.cap else self.idle

    async def read(self, reading: Coroutine[Any, Any, T], seconds: float | None = None) -> T:
        """What ``reading`` gives, within ``seconds`` (the idle timeout by default);
        ``SessionEnd`` when the peer is slower or the server stops meanwhile. A timer per
        read, not a task: this runs for every milter packet."""
        task = asyncio.current_task()
        if self.stopping.is_set() or task is None:
            reading.close()
            raise SessionEnd("stopping")
        limit = min(seconds, self.timeout()) if seconds is not None else self.timeout()
        deadline = asyncio.get_running_loop().call_later(limit, self._end, task)
        self.reading.add(task)
        try:
            return await reading
        except asyncio.CancelledError:
            if task not in self.ended:
                raise  # cancelled by someone else
            task.uncancel()
            raise SessionEnd("stopping" if self.stopping.is_set() else "idle") from None
        finally:
            deadline.cancel()
            self.reading.discard(task)
            self.ended.discard(task)

    def _end(self, task: asyncio.Task[Any]) -> None:
        """Cut a session waiting for its peer (idle too long, or the server stopping)."""
        self.ended.add(task)
        task.cancel()

    def stop(self) -> None:
        """No new sessions; the ones waiting for their peers end now."""
        self.stopping.set()
        for task in list(self.reading):
            self._end(task)

    async def close(self, seconds: float = 5.0) -> None:
        """End the sessions waiting for their peers; give the others ``seconds`` to answer."""
        self.stop()
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=seconds)
        for task in set(self.tasks):
            task.cancel()
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=1.0)
