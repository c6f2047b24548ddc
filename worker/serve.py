"""``mailgate serve``: the listeners, the outbox worker, periodic jobs and a clean shutdown.

Start-up either completes (one ``mailgate_started`` line saying what listens where and which
policy is in force) or stops with one clear line: a bad setting, a broken policy, an
unreachable database or a port already taken. SIGTERM/SIGINT stop accepting connections,
let in-flight messages finish their commit, and exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import structlog

from worker.allocator import fix_mmap_threshold
from worker.clock import utcnow
from worker.decision import Channel
from worker.dispatcher import Dispatcher
from worker.errors import ConfigError
from worker.ingress.gateway import Gateway
from worker.ingress.handoff import HandoffHandler, listening_socket
from worker.ingress.imap import ImapTarget, MailboxWorker, start_workers
from worker.ingress.milter import MilterHandler
from worker.ingress.milter import start_listener as start_milter
from worker.ingress.protocol import ConnectionLimits, GateLMTP, GateSMTP
from worker.ingress.smtp import GateHandler
from worker.oauth.manager import relay_credentials
from worker.outbox import spool_pending
from worker.pipeline import Mailgate
from worker.retention import retention_loop
from worker.settings import Settings, parse_milter_listen
from worker.web.mailbox_metrics import MailboxCollector, credential_check

log = structlog.get_logger("mailgate.serve")
PROXY_TIMEOUT = 10.0  # seconds a load balancer has to send the PROXY header
OUTBOX_INTERVAL = 5.0
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class EarlyStop:
    """A stop signal noted from the first instant of ``serve``, before the event loop (or the
    supervisor's forwarding) can handle it: a SIGTERM during start-up then means "stop as
    soon as started, exit 0" instead of dying by the signal. Forked workers inherit it."""

    requested: int | None = None

    @classmethod
    def install(cls) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, cls._note)

    @classmethod
    def _note(cls, signum: int, _frame: Any) -> None:
        cls.requested = signum


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
        self.servers: list[asyncio.base_events.Server] = []
        self.stopping = asyncio.Event()
        self.imap_workers: list[MailboxWorker] = []
        self.http_runner: Any = None
        self.wake = asyncio.Event()
        # Every listener hands its messages to this one gateway, which counts them in flight.
        self.gateway = Gateway(gate, self.executor, on_outbox=self.wake.set)
        # Relay and webhook calls can block for seconds: they get their own thread.
        self.outbox_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        self.dispatcher = Dispatcher(
            gate.engine,
            gate.settings.relay_url,
            gate.runtime.secret,
            relay_credentials=relay_credentials(gate.settings),
        )

    async def start(self) -> list[str]:
        settings = self.gate.settings
        listening = []
        tls = settings.tls_context()
        for channel, protocol in ((Channel.SMTP, GateSMTP), (Channel.LMTP, GateLMTP)):
            address = settings.listen_address(channel)
            if address is None:
                continue
            handler = GateHandler(self.gateway, channel)
            limits = ConnectionLimits(
                max_connections=settings.smtp_max_connections,
                max_per_peer=settings.smtp_max_connections_per_ip,
                data_timeout=settings.smtp_data_timeout,
            )
            factory = partial(
                protocol,
                handler,
                limits=limits,
                data_size_limit=settings.max_message_bytes,
                enable_SMTPUTF8=True,
                decode_data=False,
                hostname=self._hostname(),
                timeout=settings.smtp_idle_timeout,
                tls_context=tls,
                # Behind a load balancer the real client arrives in a PROXY header (v1/v2).
                proxy_protocol_timeout=PROXY_TIMEOUT if settings.proxy_protocol else None,
            )
            loop = asyncio.get_running_loop()
            try:
                server = await loop.create_server(
                    factory,
                    host=address[0],
                    port=address[1],
                    reuse_address=True,
                    reuse_port=self.reuse_port or None,
                )
            except OSError as exc:
                await self.close()
                name = f"MAILGATE_{channel.upper()}_LISTEN"
                raise ConfigError(
                    f"cannot listen on {address[0]}:{address[1]} ({name}): {exc.strerror or exc}"
                ) from None
            self.servers.append(server)
            port = server.sockets[0].getsockname()[1]
            listening.append(f"{channel}://{address[0]}:{port}")
        listening += await self.start_milter()
        await self.start_ingest()
        return listening

    async def start_ingest(self) -> None:
        """Accept ``mailgate ingest`` hand-offs on the socket serve() bound."""
        if self.ingest is None:
            return
        handler = HandoffHandler(self.gateway)
        server = await asyncio.start_unix_server(handler.session, sock=self.ingest)
        self.servers.append(server)

    async def start_milter(self) -> list[str]:
        value = self.gate.settings.milter_listen
        if value is None:
            return []
        if isinstance(parse_milter_listen(value), Path) and self.reuse_port and not self.dispatch:
            return []  # a unix socket cannot be shared: with --workers, worker 0 serves it
        handler = MilterHandler(self.gateway)
        try:
            server, url = await start_milter(handler, value, reuse_port=self.reuse_port)
        except ConfigError:
            await self.close()
            raise
        self.servers.append(server)
        return [url]

    async def start_http(self) -> list[str]:
        address = self.gate.settings.listen_address("http")
        if address is None or not self.dispatch:
            return []
        from aiohttp import web as aioweb

        from worker.web.app import Web

        site_app = Web(self.gate, self.executor, self.readiness, self.imap_lag)
        site_app.registry.register(MailboxCollector(lambda: self.imap_workers))
        self.http_runner = aioweb.AppRunner(site_app.application(), access_log=None)
        await self.http_runner.setup()
        site = aioweb.TCPSite(self.http_runner, address[0], address[1], reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            await self.http_runner.cleanup()
            await self.close()
            raise ConfigError(
                f"cannot listen on {address[0]}:{address[1]} "
                f"(MAILGATE_HTTP_LISTEN): {exc.strerror or exc}"
            ) from None
        server: Any = site._server  # the bound socket tells the port when 0 was asked for
        port = server.sockets[0].getsockname()[1] if server and server.sockets else address[1]
        return [f"http://{address[0]}:{port}"]

    def imap_lag(self) -> dict[str, int]:
        return {worker.target.key: worker.health.lag for worker in self.imap_workers}

    def readiness(self) -> dict[str, Any]:
        checks: dict[str, Any] = {
            "listeners": "ok" if all(s.is_serving() for s in self.servers) else "not serving",
        }
        for worker in self.imap_workers:
            health = worker.health
            checks[f"imap {worker.target.key}"] = {
                "ready": health.connected and health.state in ("idle", "catching_up"),
                "state": health.state,
                "lag": health.lag,
                "last_error": health.last_error,
                **credential_check(health),
            }
        return checks

    def _hostname(self) -> str:
        domains = self.gate.support_domains(self.gate.policies.in_force(utcnow()))
        return f"mailgate.{domains[0]}" if domains else "mailgate"

    def outbox_round(self) -> int:
        """One pass: spool mail rows when there is no relay, dispatch the rest."""
        settings = self.gate.settings
        done = 0
        if not settings.relay_url:
            done += spool_pending(self.gate.engine, settings.outbox_dir)
        while (sent := self.dispatcher.run_once()) > 0:
            done += sent
        return done

    def periodic_jobs(self) -> list[asyncio.Task[None]]:
        """The jobs that run beside the outbox in the one process that dispatches."""
        retention_days = self.gate.settings.retention_days
        if not self.dispatch or not retention_days:
            return []
        return [
            asyncio.create_task(
                retention_loop(self.gate.engine, retention_days, self.stopping),
                name="retention",
            )
        ]

    async def outbox_loop(self) -> None:
        """Hands on outbox rows as decisions commit them, and retries on a timer."""
        loop = asyncio.get_running_loop()
        while not self.stopping.is_set():
            self.wake.clear()
            try:
                await loop.run_in_executor(self.outbox_executor, self.outbox_round)
            except Exception as exc:
                log.warning("outbox_round_failed", error=type(exc).__name__)
            waiters = [
                asyncio.ensure_future(self.stopping.wait()),
                asyncio.ensure_future(self.wake.wait()),
            ]
            await asyncio.wait(
                waiters, timeout=OUTBOX_INTERVAL, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in waiters:
                waiter.cancel()

    async def close(self) -> None:
        if self.http_runner is not None:
            await self.http_runner.cleanup()
            self.http_runner = None
        for server in self.servers:
            server.close()
        await self.gateway.in_flight.idle.wait()  # in-flight decisions finish their commit
        for server in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 5)
        self.executor.shutdown(wait=True)
        self.outbox_executor.shutdown(wait=True)

    async def run(
        self,
        *,
        install_signals: bool = True,
        started: asyncio.Future[list[str]] | None = None,
        ready_fd: int | None = None,
    ) -> None:
        listening = await self.start()
        listening += await self.start_http()
        if ready_fd is not None:  # a worker process tells its parent it is listening
            os.write(ready_fd, b"1")
            os.close(ready_fd)
        loop = asyncio.get_running_loop()
        if install_signals:
            for signum in STOP_SIGNALS:
                loop.add_signal_handler(signum, self.stopping.set)
            if EarlyStop.requested is not None:  # arrived while starting
                self.stopping.set()
        if ready_fd is None:
            announce(self.gate, listening, workers=1)
        outbox = asyncio.create_task(self.outbox_loop() if self.dispatch else self.stopping.wait())
        jobs = self.periodic_jobs()
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
        for worker in self.imap_workers:
            await loop.run_in_executor(None, worker.join, 30)
        log.info("mailgate_stopped")


def _redact(url: str) -> str:
    """Database URL without its password, for the start-up line."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def announce(gate: Mailgate, listening: list[str], workers: int) -> None:
    """The one start-up line: what listens where, which policy is in force."""
    settings = gate.settings
    policy = gate.policies.in_force(utcnow())
    log.info(
        "mailgate_started",
        listening=listening,
        workers=workers,
        support_domains=gate.support_domains(policy),
        policy=policy.id if policy else None,
        policy_sha256=policy.sha256 if policy else None,
        database=_redact(settings.effective_database_url),
        reject_mode=settings.reject_mode,
        outbox="relay" if settings.relay_url else str(settings.outbox_dir),
        imap=[ImapTarget.parse(url).key for url in settings.imap_url or []],
        ingest_socket=str(path) if (path := settings.ingest_socket_path) else None,
    )


def refuse_unworkable(gate: Mailgate) -> None:
    """Stop on settings that cannot work; warn about those that probably do not."""
    settings = gate.settings
    if settings.reject_mode == "smtp" and settings.lmtp_listen:
        raise ConfigError(
            "MAILGATE_REJECT_MODE=smtp with MAILGATE_LMTP_LISTEN would make the MTA bounce "
            "(backscatter): reject in the dialogue with the milter (MAILGATE_MILTER_LISTEN)"
        )
    if not settings.support_domains:
        policy = gate.policies.in_force(utcnow())
        log.warning(
            "support_domains_not_set",
            using=gate.support_domains(policy),
            hint="set MAILGATE_SUPPORT_DOMAINS: mail to other domains is refused (550 5.1.1)",
        )


def load_language_models(gate: Mailgate) -> None:
    """Load the language models before any listener opens and before workers fork, so no
    client waits for them inside a dialogue and the workers share the pages. The outbox
    alone (``dispatch``, or every listener off) decides nothing and loads nothing."""
    settings = gate.settings
    deciding = (
        settings.smtp_listen,
        settings.lmtp_listen,
        settings.milter_listen,
        settings.ingest_socket_path,
    )
    if not settings.language_preload or (not any(deciding) and not settings.imap_url):
        return
    # Every reply's language is judged by the identifier, whether or not a policy has a
    # language rule; the reply catalogues are compiled here too, before any fork.
    from worker.catalogues import preload as preload_catalogues
    from worker.language import preload

    log.info("language_models_loaded", seconds=round(preload() + preload_catalogues(), 2))


def configured_listeners(settings: Settings, *, http: bool = True) -> list[str]:
    """The listeners as configured (port 0 stays 0), for the start-up line of ``--workers``."""
    listening = [
        f"{channel}://{host}:{port}"
        for channel in (Channel.SMTP, Channel.LMTP)
        if (address := settings.listen_address(channel))
        for host, port in [address]
    ]
    if settings.milter_listen:
        listening.append(f"milter://{settings.milter_listen}")
    if http and (address := settings.listen_address("http")):
        listening.append(f"http://{address[0]}:{address[1]}")
    return listening


def serve(gate: Mailgate, workers: int = 1) -> int:
    """Run the service; with ``workers`` > 1, that many processes share the ports."""
    EarlyStop.install()
    refuse_unworkable(gate)
    load_language_models(gate)
    fix_mmap_threshold()  # before forking: the workers inherit it
    with listening_socket(gate.settings.ingest_socket_path) as ingest:
        if workers <= 1:
            asyncio.run(Server(gate, ingest=ingest).run())
            return 0
        return _run_workers(gate, workers, ingest)


def _run_workers(gate: Mailgate, count: int, ingest: socket.socket | None = None) -> int:
    """Fork ``count`` workers listening with SO_REUSEPORT; the kernel spreads connections.

    Python decides one message per core at a time, so processes, not threads, use both
    cores. Worker 0 alone runs the outbox. The parent waits until every worker listens
    (or one failed), forwards SIGTERM/SIGINT, and exits 0 when all exited 0.
    """
    gate.engine.dispose()  # no pooled connection may cross a fork
    read_fd, write_fd = os.pipe()
    children: list[int] = []
    for index in range(count):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the worker process
            os.close(read_fd)
            code = 0
            try:
                server = Server(gate, reuse_port=True, dispatch=index == 0, ingest=ingest)
                asyncio.run(server.run(ready_fd=write_fd))
            except ConfigError as exc:
                sys.stderr.write(f"mailgate: {exc}\n")
                code = 78
            except BaseException:
                log.exception("worker_failed", worker=index)
                code = 1
            os._exit(code)
        children.append(pid)
    if ingest is not None:
        ingest.close()  # the workers accept; once they have stopped, clients are refused
    os.close(write_fd)
    ready = b""
    while chunk := os.read(read_fd, 64):
        ready += chunk
    os.close(read_fd)

    def forward(signum: int, _frame: Any) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    if len(ready) < count or EarlyStop.requested is not None:
        forward(signal.SIGTERM, None)
    else:
        announce(gate, configured_listeners(gate.settings), workers=count)
    codes = [os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) for child in children]
    if len(ready) < count:
        return next((c for c in codes if c > 0), 1)
    log.info("mailgate_stopped", workers=count, exit_codes=codes)
    return max(codes) if any(codes) else 0
