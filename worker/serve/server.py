"""One ``serve`` process: its listeners, outbox loop, jobs and IMAP pollers, then a clean stop.

Start-up either completes (the listeners of ``worker.serve.listeners``, in their order) or
stops with one clear line: a bad setting, a broken policy, an unreachable database or a
port already taken. SIGTERM/SIGINT stop accepting connections, let in-flight messages
finish their commit (the gateway counts them), and exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog

from worker.dispatcher import Dispatcher
from worker.errors import ConfigError
from worker.helpdesk.config import connector_for
from worker.helpdesk.service import HelpdeskHealth, readiness_checks
from worker.ingress.connections import Sessions, listener_caps
from worker.ingress.gateway import Gateway
from worker.ingress.imap import MailboxWorker, start_workers
from worker.ingress.protocol import ConnectionLimits
from worker.loop_errors import LoopErrors
from worker.oauth.manager import relay_credentials
from worker.pipeline import Mailgate
from worker.serve.health import imap_lag, readiness
from worker.serve.jobs import JobContext, OutboxLoop, start_periodic_jobs
from worker.serve.listeners import LISTENERS
from worker.serve.preflight import announce
from worker.web.offload import HTTP_THREADS

log = structlog.get_logger("mailgate.serve")


class Server:
    """The running service; ``run`` returns when a stop signal has been handled."""

    def __init__(
        self,
        gate: Mailgate,
        workers: int = 16,
        *,
        reuse_port: bool = False,
        dispatch: bool = True,
        ingest: socket.socket | None = None,
    ) -> None:
        self.gate = gate
        self.ingest = ingest  # the ingest socket, bound by serve() (shared by --workers)
        gate.recorder.start()  # group commit: concurrent sessions share each fsync
        self.reuse_port = reuse_port
        self.dispatch = dispatch
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decide")
        self.http_executor = ThreadPoolExecutor(max_workers=HTTP_THREADS, thread_name_prefix="http")
        self.caps = listener_caps(gate.settings)  # all of them below the open-file limit
        self.smtp_limits: list[ConnectionLimits] = []
        self.sessions: list[Sessions] = []  # the milter's and the ingest socket's
        self.servers: list[asyncio.base_events.Server] = []
        self.stopping = asyncio.Event()
        self.imap_workers: list[MailboxWorker] = []
        self.http_runner: Any = None
        self.wake = asyncio.Event()
        # Every listener hands its messages to this one gateway, which counts them in flight.
        self.gateway = Gateway(gate, self.executor, on_outbox=self.wake.set)
        # Relay and webhook calls can block for seconds: they get their own thread.
        self.outbox_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        dispatcher = Dispatcher(
            gate.engine,
            gate.settings.relay_url,
            gate.runtime.secret,
            relay_credentials=relay_credentials(gate.settings),
            helpdesk=connector_for(gate.settings),
        )
        self.helpdesk_health = HelpdeskHealth()  # the sync job writes it, /readyz reads it
        self.outbox = OutboxLoop(gate, dispatcher, self.wake)

    async def start(self) -> list[str]:
        """Open every configured listener, in the table's order; a failure closes them all."""
        listening = []
        for _name, start in LISTENERS:
            try:
                listening += await start(self)
            except ConfigError:
                await self.close()
                raise
        return listening

    def readiness(self) -> dict[str, Any]:
        checks = readiness(self.servers, self.imap_workers)
        checks.update(readiness_checks(self.gate.settings, self.helpdesk_health))
        return checks

    def imap_lag(self) -> dict[str, int]:
        return imap_lag(self.imap_workers)

    def outbox_round(self) -> int:
        """One pass of the outbox: spool or dispatch what is due."""
        return self.outbox.round()

    async def close(self) -> None:
        # Queued HTTP reads are dropped, so that a flood of them cannot hold the stop.
        self.http_executor.shutdown(wait=False, cancel_futures=True)
        if self.http_runner is not None:
            await self.http_runner.cleanup()
            self.http_runner = None
        for server in self.servers:
            server.close()
        # Idle peers are let go at once; sessions deciding finish, answer, and then go too.
        self.end_idle_sessions()
        await self.gateway.in_flight.idle.wait()  # in-flight decisions finish their commit
        self.end_idle_sessions()
        for sessions in self.sessions:
            await sessions.close()
        for server in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)
        # Waiting for the threads (an outbox round may be in a relay call) blocks: not the loop.
        await asyncio.to_thread(self._shut_down_executors)

    def _shut_down_executors(self) -> None:
        self.executor.shutdown(wait=True)
        self.outbox_executor.shutdown(wait=True)
        self.http_executor.shutdown(wait=True)

    def end_idle_sessions(self) -> None:
        for limits in self.smtp_limits:
            limits.shut_down()
        for sessions in self.sessions:
            sessions.stop()

    async def run(
        self,
        *,
        install_signals: bool = True,
        started: asyncio.Future[list[str]] | None = None,
        ready_fd: int | None = None,
        stopped_early: Callable[[], bool] = lambda: False,
    ) -> None:
        """Start, serve until a stop signal, stop; ``stopped_early`` tells whether one came
        before the loop could handle it (``worker.serve.supervisor.EarlyStop``)."""
        asyncio.get_running_loop().set_exception_handler(LoopErrors())
        listening = await self.start()
        if ready_fd is not None:  # a worker process tells its parent it is listening
            os.write(ready_fd, b"1")
            os.close(ready_fd)
        if install_signals:
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self.stopping.set)
            if stopped_early():  # arrived while starting
                self.stopping.set()
        if ready_fd is None:
            announce(self.gate, listening, workers=1)
        await self._serve(started, listening)

    async def _serve(self, started: asyncio.Future[list[str]] | None, listening: list[str]) -> None:
        """The outbox, the jobs and the IMAP pollers until ``stopping``; then the stop."""
        outbox = asyncio.create_task(
            self.outbox.run(self.outbox_executor, self.stopping)
            if self.dispatch
            else self.stopping.wait()
        )
        context = JobContext(self.gate, self.stopping, self.helpdesk_health)
        jobs = start_periodic_jobs(context, dispatching=self.dispatch)
        imap_stop = threading.Event()
        # One process polls each mailbox; with --workers, worker 0 does.
        self.imap_workers = start_workers(self.gate, imap_stop) if self.dispatch else []
        if started is not None:
            started.set_result(listening)
        await self.stopping.wait()
        log.info("mailgate_stopping", in_flight=self.gateway.in_flight.count)
        imap_stop.set()
        await self.close()
        await outbox
        await asyncio.gather(*jobs)
        loop = asyncio.get_running_loop()
        for worker in self.imap_workers:
            await loop.run_in_executor(None, worker.join, 30)
        log.info("mailgate_stopped")
