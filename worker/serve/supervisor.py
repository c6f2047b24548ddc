"""``serve()``: one process, or ``--workers`` forked processes sharing the ports.

Python decides one message per core at a time, so processes, not threads, use both cores:
each worker listens with SO_REUSEPORT and the kernel spreads connections; worker 0 alone
runs the outbox, the periodic jobs, the IMAP pollers and the HTTP side. The parent waits
until every worker listens (or one failed), forwards SIGTERM/SIGINT, and exits 0 when all
exited 0. A stop signal is noted from the first instant (``EarlyStop``), before the event
loop or the forwarding can handle it: a SIGTERM during start-up means "stop as soon as
started, exit 0", not death by the signal.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection, Pipe
from typing import Any

import structlog

from worker import heap
from worker.allocator import fix_mmap_threshold
from worker.errors import ConfigError
from worker.ingress.handoff import listening_socket
from worker.pipeline import Mailgate
from worker.serve.preflight import (
    announce,
    configured_listeners,
    load_language_models,
    refuse_unworkable,
)
from worker.serve.server import Server
from worker.serve.writer import RecordingClient, run_writer

log = structlog.get_logger("mailgate.serve")
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class EarlyStop:
    """A stop signal noted before anything could handle it; forked workers inherit it."""

    requested: int | None = None

    @classmethod
    def install(cls) -> None:
        for signum in STOP_SIGNALS:
            signal.signal(signum, cls._note)

    @classmethod
    def _note(cls, signum: int, _frame: Any) -> None:
        cls.requested = signum

    @classmethod
    def noted(cls) -> bool:
        return cls.requested is not None


def serve(gate: Mailgate, workers: int = 1) -> int:
    """Run the service; with ``workers`` > 1, that many processes share the ports."""
    EarlyStop.install()
    refuse_unworkable(gate)
    from worker.web.console_token import announce_console

    announce_console(gate.settings)  # the quick start's console token, and where it is
    load_language_models(gate)
    fix_mmap_threshold()  # before forking: the workers inherit it
    heap.settle()  # what is loaded now lives as long as the process: never scanned again
    with listening_socket(gate.settings.ingest_socket_path) as ingest:
        if workers <= 1:
            asyncio.run(Server(gate, ingest=ingest).run(stopped_early=EarlyStop.noted))
            return 0
        return _run_workers(gate, workers, ingest)


def _run_workers(gate: Mailgate, count: int, ingest: socket.socket | None = None) -> int:
    """Fork the writer and the workers, wait until each worker listens, forward stop
    signals, collect exits; a writer that dies stops the workers."""
    gate.engine.dispose()  # no pooled connection may cross a fork
    pipes = [Pipe() for _ in range(count)]  # (writer's end, worker's end) per worker
    writer = _fork_writer(gate, pipes, ingest)
    read_fd, write_fd = os.pipe()
    children = [
        _fork_worker(gate, index, ingest, read_fd, write_fd, pipes) for index in range(count)
    ]
    for ends in pipes:
        for end in ends:
            end.close()  # only the writer and each worker hold their ends: EOF means gone
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

    for signum in STOP_SIGNALS:
        signal.signal(signum, forward)
    if len(ready) < count or EarlyStop.requested is not None:
        forward(signal.SIGTERM, None)
    else:
        announce(gate, configured_listeners(gate.settings), workers=count)
    codes = _collect(children, writer, forward)
    if len(ready) < count:
        return next((c for c in codes if c > 0), 1)
    log.info("mailgate_stopped", workers=count, exit_codes=codes)
    return max(*codes, 1) if any(codes) else 0  # a child killed by a signal has a code < 0


def _collect(children: list[int], writer: int, stop: Callable[[int, Any], None]) -> list[int]:
    """The workers' exit codes, then the writer's. The writer ends by itself (code 0) only
    once every worker has closed its pipe, that is, is exiting; any other end of it stops
    the workers (their decisions could no longer commit)."""
    codes: dict[int, int] = {}
    while len(codes) < len(children) + 1:
        pid, status = os.wait()
        codes[pid] = os.waitstatus_to_exitcode(status)
        if pid == writer and codes[pid] != 0:
            log.error("writer_exited", exit_code=codes[pid])
            stop(signal.SIGTERM, None)
    return [codes[child] for child in [*children, writer] if child in codes]


def _fork_writer(
    gate: Mailgate, pipes: list[tuple[Connection, Connection]], ingest: socket.socket | None
) -> int:
    """The writer process (``worker.serve.writer``): it keeps the writer's ends only."""
    pid = os.fork()
    if pid:
        return pid
    code = 0  # pragma: no cover - from here on, the writer process
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)  # it stops once the workers have stopped
    try:
        if ingest is not None:
            ingest.close()  # the workers accept on it, and refuse once they have stopped
        for _, worker_end in pipes:
            worker_end.close()
        code = run_writer(gate.recorder_here(), [writer_end for writer_end, _ in pipes])
    except BaseException:
        log.exception("writer_failed")
        code = 1
    os._exit(code)


def _fork_worker(
    gate: Mailgate,
    index: int,
    ingest: socket.socket | None,
    read_fd: int,
    write_fd: int,
    pipes: list[tuple[Connection, Connection]],
) -> int:
    """One worker process; it writes a byte to ``write_fd`` once it listens, and records
    through its end of the pipe to the writer."""
    pid = os.fork()
    if pid:
        return pid
    os.close(read_fd)  # pragma: no cover - from here on, the worker process
    code = 0
    try:
        for number, (writer_end, worker_end) in enumerate(pipes):
            writer_end.close()
            if number != index:
                worker_end.close()
        gate.recorder = RecordingClient(pipes[index][1], gate.recorder_here())
        server = Server(gate, reuse_port=True, dispatch=index == 0, ingest=ingest)
        asyncio.run(server.run(ready_fd=write_fd, stopped_early=EarlyStop.noted))
    except ConfigError as exc:
        sys.stderr.write(f"mailgate: {exc}\n")
        code = 78
    except BaseException:
        log.exception("worker_failed", worker=index)
        code = 1
    os._exit(code)
