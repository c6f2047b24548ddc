"""Hostile and broken peers against one ``mailgate serve`` subprocess (issue 25).

The process runs under ``prlimit --nofile=256`` with every listener on (SMTP, milter, HTTP,
ingest socket) and 150 decisions stored. In file order: an HTTP flood beside SMTP (finding
4), more idle connections than the file limit (2), a header flood and an oversize hand-off
with memory measured (3, 7), malformed hand-off frames (7), and last SIGTERM with idle peers
of every kind (6). Each test prints its figure; bounds are generous (a loaded 2-core box).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import signal
import socket
import statistics
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import add_standard_tickets, cli_env, envelope, free_port, make_settings
from peers import Milter, Serve, message, smtp_reply, smtp_send, wait_until

from worker.ingress import milter_protocol as mp
from worker.pipeline import Mailgate

TOKEN = "hostile-token-0123456789abcdef"
NOFILE = 256
LIMIT = 4 * 1024 * 1024  # MAILGATE_MAX_MESSAGE_BYTES
FLOOD = 100  # concurrent HTTP clients, each asking again as soon as answered
WARM = 5  # answers seen before measuring: the other requests wait in the server


@dataclass
class Served:
    serve: Serve
    smtp: int
    milter: int
    http: int
    ingest: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("hostile")
    gate = Mailgate.open(make_settings(root))
    add_standard_tickets(gate)
    gate.ingest_many([(message(n), envelope("ann@customer.example")) for n in range(150)])
    gate.engine.dispose()
    smtp, milter, http = free_port(), free_port(), free_port()
    env = cli_env(
        root / "var",
        MAILGATE_SMTP_LISTEN=f"127.0.0.1:{smtp}",
        MAILGATE_MILTER_LISTEN=f"127.0.0.1:{milter}",
        MAILGATE_HTTP_LISTEN=f"127.0.0.1:{http}",
        MAILGATE_API_TOKEN=TOKEN,
        MAILGATE_MAX_MESSAGE_BYTES=str(LIMIT),
        MAILGATE_STRESS_IDLE_TIMEOUT="1",
    )
    serve = Serve(env, NOFILE)
    yield Served(serve, smtp, milter, http, root / "var" / "ingest.sock")
    if serve.process.poll() is None:
        serve.stop()


def http_get(port: int, path: str, token: str | None = None) -> tuple[int, bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


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
    """FLOOD keep-alive clients asking for a thousand decisions until ``stop``; ``started``
    once answers flow (the server has the rest queued). How many answers came."""
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


def test_smtp_data_is_not_slowed_by_an_http_flood(served: Served) -> None:
    """Finding 4. Before: 0.05 s → 1.8 s (samples up to 3.7 s) under this flood."""
    quiet = statistics.median(data_seconds(served.smtp, n) for n in range(5))
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    started = threading.Event()
    answered: list[int] = []
    thread = threading.Thread(
        target=lambda: answered.append(loop.run_until_complete(flood(served.http, started, stop)))
    )
    thread.start()
    assert started.wait(30)
    samples = [data_seconds(served.smtp, n) for n in range(5, 10)]
    busy = statistics.median(samples)
    loop.call_soon_threadsafe(stop.set)
    thread.join(60)
    print(f"DATA->250 median: quiet {quiet:.3f} s, under {FLOOD} API clients {busy:.3f} s")
    # Generous: main gave a median of 1.3 to 1.8 s here; this box gives about 0.1 s.
    assert busy < max(1.0, 10 * quiet), (quiet, samples)


def open_idle(port: int, count: int) -> list[socket.socket]:
    """``count`` connections that send nothing (refused ones are closed by the server)."""
    idle = []
    for _ in range(count):
        try:
            idle.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        except OSError:
            break
    return idle


def healthy(port: int) -> bool:
    try:
        return http_get(port, "/healthz")[0] == 200
    except OSError:
        return False


def milter_served(port: int) -> bool:
    try:
        client = Milter(port)
        command, reply = client.message(b"ann@customer.example", message(time.monotonic_ns()))
        client.close()
    except (OSError, ConnectionError):
        return False  # refused while the listener is full: the MTA would retry
    return command == mp.REPLY_CODE and reply.startswith(b"550")


def test_more_idle_connections_than_the_file_limit(served: Served) -> None:
    """Finding 2. 300 idle milter and 100 idle HTTP connections against a file limit of 256:
    SMTP, /healthz and the milter still answer, and refusals are a line a minute."""
    started, logged = time.monotonic(), len(served.serve.lines)
    idle = open_idle(served.milter, 300) + open_idle(served.http, 100)
    assert len(idle) > NOFILE, "more peers than serve has files; it decides which it keeps"
    assert smtp_send(served.smtp, b"ann@customer.example", message(1)).startswith(b"250")
    # A full listener refuses newcomers until its idle peers time out (the stress timeout,
    # 1 s here): a probe or an MTA that retries is served.
    wait_until(lambda: healthy(served.http), 15, "/healthz answered")
    wait_until(lambda: milter_served(served.milter), 15, "a milter session served")
    seconds = time.monotonic() - started
    for sock in idle:
        sock.close()
    refusals = served.serve.events("connection_refused", since=logged)
    loop_errors = served.serve.events("event_loop_error", since=logged)
    print(
        f"{len(idle)} idle peers: all listeners answered within {seconds:.1f} s; "
        f"{len(refusals)} refusal lines, {len(loop_errors)} loop error lines"
    )
    # At most a line per listener and minute (before: asyncio's report on every accept try).
    assert len(refusals) <= 4 and len(loop_errors) <= 2, (refusals, loop_errors)
    assert served.serve.events("connection_caps_lowered"), "caps were fitted to 256 files"


def test_a_header_flood_keeps_memory_bounded(served: Served) -> None:
    """Finding 3. Header fields of 1 MiB against a 4 MiB limit: 552 at the fifth, and the
    peak memory grows by less than the flood would take (before: every field was kept)."""
    before = served.serve.peak_rss_kib()
    client = Milter(served.milter)
    client.send(mp.MAIL, b"<ann@customer.example>\0")
    client.send(mp.RCPT, b"<support@wildix.com>\0")
    client.send(mp.DATA)
    field = b"X-Filler\0" + b"a" * (1024 * 1024 - 64) + b"\0"
    number, answer, text = 0, mp.CONTINUE, b""
    while answer == mp.CONTINUE and number < 100:
        number += 1
        answer, text = client.send(mp.HEADER, field)
    client.close()
    grown = (served.serve.peak_rss_kib() - before) // 1024
    print(f"header flood: 552 at field {number}, peak memory +{grown} MiB")
    assert answer == mp.REPLY_CODE and text.startswith(b"552 5.3.4") and number <= 5
    assert grown < 48


def handoff(path: Path, call: dict[str, object]) -> tuple[socket.socket, object]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(60)
    sock.connect(str(path))
    stream = sock.makefile("rwb")
    stream.write(json.dumps(call).encode() + b"\n")
    stream.flush()
    return sock, stream


CALL = {"v": 1, "arguments": [], "sender": "ann@customer.example", "recipients": [], "json": False}


def test_the_ingest_socket_checks_the_length_before_reading(served: Served) -> None:
    """Finding 7. A length of 10^12 followed by 64 MiB: nothing kept (before: all of it
    read into memory); a message just over the limit: exit 65 with one line."""
    before = served.serve.peak_rss_kib()
    sock, stream = handoff(served.ingest, CALL)
    assert json.loads(stream.readline()) == {"read": "-"}
    stream.write(b"1000000000000\n")
    chunk = b"x" * (1 << 20)
    for _ in range(64):
        stream.write(chunk)
    stream.flush()
    sock.close()
    sock, stream = handoff(served.ingest, CALL)
    assert json.loads(stream.readline()) == {"read": "-"}
    stream.write(b"%d\n" % (LIMIT + 1) + b"x" * (LIMIT + 1))
    stream.flush()
    answer = json.loads(stream.readline())
    sock.close()
    grown = (served.serve.peak_rss_kib() - before) // 1024
    print(f"hand-off of 10^12 declared bytes: peak memory +{grown} MiB; over the limit: {answer}")
    assert answer["exit"] == 65 and "MAILGATE_MAX_MESSAGE_BYTES" in answer["stderr"]
    assert answer["stderr"].count("\n") == 1
    assert grown < 32


def test_malformed_frames_are_one_line_and_no_tempfail(served: Served) -> None:
    """Finding 7. A call line without its fields, and a length line that is no number: one
    log line each, no traceback, and the tempfail counter (the 451-rate alert) unchanged."""
    sock, stream = handoff(served.ingest, {"v": 1})
    assert stream.readline() == b""
    sock.close()
    sock, stream = handoff(served.ingest, CALL)
    assert json.loads(stream.readline()) == {"read": "-"}
    stream.write(b"9" * 5000 + b"\n")
    stream.flush()
    assert stream.readline() == b""
    sock.close()
    wait_until(lambda: len(served.serve.events("handoff_frame_malformed")) >= 2, 10, "the log")
    assert not [line for line in served.serve.lines if "Traceback" in line or '"exception"' in line]
    _, metrics = http_get(served.http, "/metrics")
    assert b'mailgate_smtp_tempfail_total{channel="pipe"}' not in metrics


def decision_waiting_for_the_writer_lock(pid: int) -> bool:
    """True when ``pid`` waits for a file lock: the test holds the SQLite writer lock."""
    return any(
        f" {pid} " in line for line in Path("/proc/locks").read_text().splitlines() if "->" in line
    )


def test_sigterm_with_idle_peers_is_done_in_seconds(served: Served) -> None:
    """Finding 6. Before: one idle ingest-socket client held SIGTERM 59.9 s, and 20 idle
    milter connections logged 20 CancelledError callbacks at exit. A decision in flight at
    the signal (held at the writer lock by the test) still commits and is answered."""
    milters = [Milter(served.milter) for _ in range(20)]
    ingest = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    ingest.connect(str(served.ingest))
    smtp = socket.create_connection(("127.0.0.1", served.smtp), timeout=30)
    http = socket.create_connection(("127.0.0.1", served.http), timeout=30)
    http.sendall(b"GET /heal")
    assert smtp.makefile("rb").readline().startswith(b"220")
    deciding = Milter(served.milter)
    lock = (served.ingest.parent / "mailgate.db.writer-lock").open("a+b")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        answers: list[tuple[bytes, bytes]] = []
        answer = threading.Thread(
            target=lambda: answers.append(deciding.message(b"ann@customer.example", message(7)))
        )
        answer.start()
        pid = served.serve.process.pid
        wait_until(lambda: decision_waiting_for_the_writer_lock(pid), 15, "a decision in flight")
        stopped_at = len(served.serve.lines)
        started = time.monotonic()
        served.serve.process.send_signal(signal.SIGTERM)
        wait_until(lambda: served.serve.events("mailgate_stopping"), 15, "the stop to begin")
    finally:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()
    code = served.serve.process.wait(60)
    seconds = time.monotonic() - started
    answer.join(30)
    print(f"SIGTERM with 23 idle peers and 1 decision in flight: exit {code} in {seconds:.2f} s")
    assert code == 0 and seconds < 10
    [stopping] = served.serve.events("mailgate_stopping")
    assert stopping["in_flight"] == 1
    assert answers and answers[0][0] == mp.REPLY_CODE, "the decision in flight was answered"
    served.serve.reader.join(10)
    after = "".join(served.serve.lines[stopped_at:])
    assert "CancelledError" not in after and "Traceback" not in after, after[-2000:]
    for peer in [*[m.sock for m in milters], deciding.sock, ingest, smtp, http]:
        peer.close()
