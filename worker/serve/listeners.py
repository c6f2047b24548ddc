"""The listener table: every kind of listener ``serve`` opens, and how each one starts.

A row names the listener and the coroutine that opens it for a running ``Server``; a
listener whose setting is off answers with nothing, one that cannot bind raises one
``ConfigError`` naming its setting. SMTP and LMTP are aiosmtpd protocols over the
gateway's handler, the milter our own, the ingest socket the one ``serve()`` bound before
forking, and the HTTP side (health, metrics, API, console) comes last and only in the
process that dispatches. A new listener is a function here and a row in ``LISTENERS``.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from worker.clock import utcnow
from worker.decision import Channel
from worker.errors import ConfigError
from worker.ingress.connections import Sessions
from worker.ingress.gateway import Gateway
from worker.ingress.handoff import HandoffHandler
from worker.ingress.imap import MailboxWorker
from worker.ingress.milter import MilterHandler
from worker.ingress.milter import start_listener as start_milter
from worker.ingress.protocol import ConnectionLimits, GateLMTP, GateSMTP
from worker.ingress.smtp import GateHandler
from worker.pipeline import Mailgate
from worker.settings import parse_milter_listen

PROXY_TIMEOUT = 10.0  # seconds a load balancer has to send the PROXY header


class Serving(Protocol):
    """What a listener needs of the running server (``worker.serve.server.Server``)."""

    gate: Mailgate
    gateway: Gateway
    executor: ThreadPoolExecutor
    http_executor: ThreadPoolExecutor  # the HTTP side's own threads (worker.web.offload)
    caps: dict[str, int]  # each listener's connection cap, below the open-file limit
    smtp_limits: list[ConnectionLimits]
    sessions: list[Sessions]  # the milter's and the ingest socket's
    reuse_port: bool
    dispatch: bool  # the one process that runs the outbox, the jobs and the HTTP side
    ingest: socket.socket | None
    servers: list[asyncio.base_events.Server]  # every listener opened, closed at the stop
    imap_workers: list[MailboxWorker]
    http_runner: Any

    def readiness(self) -> dict[str, Any]: ...

    def imap_lag(self) -> dict[str, int]: ...


async def smtp(server: Serving) -> list[str]:
    return await _smtp_like(server, Channel.SMTP, GateSMTP)


async def lmtp(server: Serving) -> list[str]:
    return await _smtp_like(server, Channel.LMTP, GateLMTP)


async def _smtp_like(
    server: Serving, channel: Channel, protocol: type[GateSMTP] | type[GateLMTP]
) -> list[str]:
    """An aiosmtpd listener with our limits, on the address its setting names."""
    settings = server.gate.settings
    address = settings.listen_address(channel)
    if address is None:
        return []
    limits = ConnectionLimits.for_listener(settings, server.caps[channel])
    server.smtp_limits.append(limits)
    factory = partial(
        protocol,
        GateHandler(server.gateway, channel),
        limits=limits,
        data_size_limit=settings.max_message_bytes,
        enable_SMTPUTF8=True,
        decode_data=False,
        hostname=hostname(server),
        timeout=settings.smtp_idle_timeout,
        tls_context=settings.tls_context(),
        # Behind a load balancer the real client arrives in a PROXY header (v1/v2).
        proxy_protocol_timeout=PROXY_TIMEOUT if settings.proxy_protocol else None,
    )
    try:
        listening = await asyncio.get_running_loop().create_server(
            factory,
            host=address[0],
            port=address[1],
            reuse_address=True,
            reuse_port=server.reuse_port or None,
        )
    except OSError as exc:
        name = f"MAILGATE_{channel.upper()}_LISTEN"
        raise ConfigError(
            f"cannot listen on {address[0]}:{address[1]} ({name}): {exc.strerror or exc}"
        ) from None
    server.servers.append(listening)
    return [f"{channel}://{address[0]}:{listening.sockets[0].getsockname()[1]}"]


async def milter(server: Serving) -> list[str]:
    value = server.gate.settings.milter_listen
    if value is None:
        return []
    if isinstance(parse_milter_listen(value), Path) and server.reuse_port and not server.dispatch:
        return []  # a unix socket cannot be shared: with --workers, worker 0 serves it
    handler = MilterHandler(server.gateway, server.caps["milter"])
    server.sessions.append(handler.sessions)
    listening, url = await start_milter(handler, value, reuse_port=server.reuse_port)
    server.servers.append(listening)
    return [url]


async def ingest_socket(server: Serving) -> list[str]:
    """Accept ``mailgate ingest`` hand-offs on the socket serve() bound (not announced)."""
    if server.ingest is None:
        return []
    handler = HandoffHandler(server.gateway, server.caps["ingest"])
    session = handler.sessions.serving(handler.session)
    server.sessions.append(handler.sessions)
    server.servers.append(await asyncio.start_unix_server(session, sock=server.ingest))
    return []


async def http(server: Serving) -> list[str]:
    """Health, metrics, the API and the console, in the process that dispatches."""
    address = server.gate.settings.listen_address("http")
    if address is None or not server.dispatch:
        return []
    from aiohttp import web as aioweb

    from worker.helpdesk.metrics import HelpdeskCollector
    from worker.web.app import Web
    from worker.web.guard import ConnectionGuard, GuardedSite
    from worker.web.mailbox_metrics import MailboxCollector

    # Its own threads: decisions never queue behind HTTP requests (worker.web.offload).
    site_app = Web(server.gate, server.http_executor, server.readiness, server.imap_lag)
    site_app.registry.register(MailboxCollector(lambda: server.imap_workers))
    settings = server.gate.settings
    site_app.registry.register(HelpdeskCollector(server.gate.read_engine, settings.helpdesk))
    server.http_runner = aioweb.AppRunner(site_app.application(), access_log=None)
    await server.http_runner.setup()
    guard = ConnectionGuard(
        server.caps["http"], settings.http_idle_timeout, settings.stress_idle_timeout
    )
    site = GuardedSite(server.http_runner, address[0], address[1], guard)
    try:
        await site.start()
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {address[0]}:{address[1]} "
            f"(MAILGATE_HTTP_LISTEN): {exc.strerror or exc}"
        ) from None
    bound: Any = site._server  # the bound socket tells the port when 0 was asked for
    port = bound.sockets[0].getsockname()[1] if bound and bound.sockets else address[1]
    return [f"http://{address[0]}:{port}"]


def hostname(server: Serving) -> str:
    """The name in the greeting: ``mailgate.<first support domain>``."""
    gate = server.gate
    domains = gate.support_domains(gate.policies.in_force(utcnow()))
    return f"mailgate.{domains[0]}" if domains else "mailgate"


# In the order they open; each returns the URLs it listens on, for the start-up line.
LISTENERS: tuple[tuple[str, Callable[[Serving], Awaitable[list[str]]]], ...] = (
    ("smtp", smtp),
    ("lmtp", lmtp),
    ("milter", milter),
    ("ingest socket", ingest_socket),
    ("http", http),
)
