"""An HTTP flood does not slow the decisions (issue 25, finding 4).

Before, HTTP requests and decisions shared one 16-thread pool and JSON was encoded on the
event loop: 200 concurrent ``/api/decisions?limit=1000`` with 150 decisions stored took an
SMTP ``DATA``→``250`` from 0.011 s to 4.18 s. ``mailgate serve`` runs as a subprocess here
(its own interpreter, as in production); the flood and the SMTP client are in the test.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import ServeProcess, add_standard_tickets, cli_env, envelope, free_port, make_settings
from peers import message, smtp_reply

from worker.pipeline import Mailgate

TOKEN = "flood-token-0123456789abcdef"
FLOOD = 100  # concurrent clients, each asking again as soon as answered
WARM = 5  # answers seen before measuring: the other requests wait in the server


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[tuple[int, int]]:
    gate = Mailgate.open(make_settings(tmp_path))
    add_standard_tickets(gate)
    gate.ingest_many([(message(n), envelope("ann@customer.example")) for n in range(150)])
    gate.engine.dispose()
    smtp, http = free_port(), free_port()
    process = ServeProcess(
        cli_env(
            tmp_path / "var",
            MAILGATE_SMTP_LISTEN=f"127.0.0.1:{smtp}",
            MAILGATE_HTTP_LISTEN=f"127.0.0.1:{http}",
            MAILGATE_API_TOKEN=TOKEN,
        )
    )
    process.start()
    yield smtp, http
    assert process.stop() == 0


def data_seconds(port: int, number: int) -> float:
    """Seconds from the end of DATA to the ``250``."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        reader = sock.makefile("rb")
        smtp_reply(reader)
        for command in (b"EHLO probe", b"MAIL FROM:<ann@customer.example>"):
            sock.sendall(command + b"\r\n")
            smtp_reply(reader)
        sock.sendall(b"RCPT TO:<support@wildix.com>\r\nDATA\r\n")
        smtp_reply(reader)
        smtp_reply(reader)
        sock.sendall(message(1000 + number))
        started = time.perf_counter()
        sock.sendall(b".\r\n")
        answer = smtp_reply(reader)
        elapsed = time.perf_counter() - started
        assert answer.startswith(b"250"), answer
        return elapsed


async def flood(port: int, started: threading.Event, stop: asyncio.Event) -> int:
    """FLOOD keep-alive clients asking for a thousand decisions, again and again until
    ``stop``; ``started`` once answers flow (the server has the rest queued). How many
    answers came."""
    request = (
        f"GET /api/decisions?limit=1000 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}"
        "\r\n\r\n"
    ).encode()
    answered = 0

    async def client() -> None:
        nonlocal answered
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while not stop.is_set():
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head[:100]
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            await reader.readexactly(length)
            answered += 1
            if answered == WARM:
                started.set()

    clients = [asyncio.ensure_future(client()) for _ in range(FLOOD)]
    await stop.wait()
    for task in clients:
        task.cancel()  # the connection closes; its answer is not awaited
    await asyncio.gather(*clients, return_exceptions=True)
    return answered


def test_smtp_data_is_not_slowed_by_an_http_flood(serve: tuple[int, int]) -> None:
    smtp, http = serve
    quiet = statistics.median(data_seconds(smtp, n) for n in range(5))
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    started = threading.Event()
    answered: list[int] = []
    thread = threading.Thread(
        target=lambda: answered.append(loop.run_until_complete(flood(http, started, stop)))
    )
    thread.start()
    assert started.wait(30)
    samples = [data_seconds(smtp, n) for n in range(5, 10)]
    busy = statistics.median(samples)
    loop.call_soon_threadsafe(stop.set)
    thread.join(60)
    print(f"DATA->250 median: quiet {quiet:.3f} s, under the flood {busy:.3f} s", samples, answered)
    # Generous: a loaded 2-core machine varies; the shared pool made it seconds.
    assert busy < max(0.5, 10 * quiet), (quiet, busy)
