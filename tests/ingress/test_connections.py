"""The pieces behind the listener caps: fitting caps to the file limit, and asyncio's own
error reports logged once per kind and interval (issue 25, finding 2: an exhausted file
limit made asyncio report "socket.accept() out of system resource" 1.13 million times)."""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from pathlib import Path

import structlog
from helpers import RunningServer, make_settings
from peers import Milter

from worker.ingress.connections import share
from worker.loop_errors import LoopErrors
from worker.pipeline import Mailgate


def test_caps_are_scaled_down_together_to_fit_the_file_budget() -> None:
    asked = {"smtp": 200, "milter": 200, "http": 100, "ingest": 50}
    assert share(asked, 1000) == asked
    fitted = share(asked, 192)  # prlimit --nofile=256 less the reserve
    assert sum(fitted.values()) <= 192 and fitted == {
        "smtp": 69,
        "milter": 69,
        "http": 34,
        "ingest": 17,
    }


def test_a_storm_of_accept_errors_is_one_line() -> None:
    handler = LoopErrors(interval=60)
    loop = asyncio.new_event_loop()
    error = OSError(errno.EMFILE, "Too many open files")
    context = {"message": "socket.accept() out of system resource", "exception": error}
    with structlog.testing.capture_logs() as logged:
        for _ in range(100_000):
            handler(loop, context)
        handler(loop, {"message": "Task was destroyed", "exception": asyncio.CancelledError()})
    loop.close()
    assert [entry["event"] for entry in logged] == ["event_loop_error"]
    assert logged[0]["error_type"] == "OSError" and "exc_info" not in logged[0]
    assert handler.suppressed[(context["message"], "OSError")] == 99_999


def test_silent_peers_are_disconnected_after_the_idle_timeout(tmp_path: Path) -> None:
    """An HTTP peer that sent half a request line and a milter peer that negotiated and went
    quiet are disconnected after their idle timeouts (before: still open after 150 s)."""
    settings = make_settings(
        tmp_path,
        smtp_listen="off",
        milter_listen="127.0.0.1:0",
        http_listen="127.0.0.1:0",
        http_idle_timeout=0.5,
        milter_idle_timeout=0.5,
    )
    gate = Mailgate.open(settings)
    server = RunningServer(gate)
    try:
        http = socket.create_connection(("127.0.0.1", server.port("http")), timeout=10)
        http.sendall(b"GET /hea")
        milter = Milter(server.port("milter"))
        started = time.monotonic()
        assert http.recv(1) == b"" and milter.sock.recv(1) == b"", "closed by the server"
        seconds = time.monotonic() - started
        assert seconds < 5, seconds
        http.close()
        milter.close()
    finally:
        server.stop()
        gate.engine.dispose()
