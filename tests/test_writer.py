"""``serve --workers``'s writer process: every worker's decisions in one chain, each
answered with its own outcome; a writer that dies turns every answer into "retry later"
and stops the service, and nothing unrecorded was acknowledged."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import subprocess
import sys
import threading
from collections.abc import Iterator
from multiprocessing.connection import Pipe
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    cli_env,
    envelope,
    fixture_bytes,
    free_port,
    make_settings,
    with_headers,
)
from sqlmodel import Session, select

from worker.audit import verify_chain
from worker.errors import TransientError
from worker.pipeline import Mailgate
from worker.serve.writer import RecordingClient, run_writer
from worker.store.models import ChainHead, DecisionRow
from worker.store.repository import iter_chain, load_raw

SENDERS = 4


def new_ticket(number: int, sender: str) -> bytes:
    return with_headers(
        fixture_bytes("new_ticket.eml"), Message_ID=f"<w-{number}@customer.example>", From=sender
    )


@pytest.fixture
def writer(gate: Mailgate) -> Iterator[list[Mailgate]]:
    """Two gates (as two workers) recording through one writer thread over real pipes."""
    pipes = [Pipe() for _ in range(2)]
    thread = threading.Thread(
        target=run_writer, args=(gate.recorder_here(), [end for end, _ in pipes]), daemon=True
    )
    thread.start()
    workers = [Mailgate(gate.runtime) for _ in pipes]
    for worker, (_, end) in zip(workers, pipes, strict=True):
        worker.recorder = RecordingClient(end, worker.recorder_here())
    yield workers
    for worker in workers:
        assert isinstance(worker.recorder, RecordingClient)
        worker.recorder.close()
    thread.join(10)
    assert not thread.is_alive(), "the writer stops once every worker has closed its pipe"


def test_two_workers_record_one_chain_through_the_writer(
    gate: Mailgate, writer: list[Mailgate]
) -> None:
    outcomes: list[str] = []
    lock = threading.Lock()

    def deliver(worker: Mailgate, number: int) -> None:
        sender = f"s{number % SENDERS}@customer.example"
        decision = worker.ingest(new_ticket(number, sender), envelope(sender))
        with lock:
            outcomes.append(decision.reply.reason or "")

    threads = [threading.Thread(target=deliver, args=(writer[n % 2], n)) for n in range(40)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Redelivered to the other worker: found by the unique key, answered as the first.
    again = writer[1].ingest(new_ticket(0, "s0@customer.example"), envelope("s0@customer.example"))
    assert (again.decision, again.original_decision) == ("duplicate", "rejected_new_ticket")
    assert sorted(outcomes).count("rejected_new_ticket") == SENDERS, "one reply per sender"
    with Session(gate.engine) as session:
        rows = session.scalars(select(DecisionRow)).all()
        head = session.get(ChainHead, 1)
        assert head is not None
        assert verify_chain(iter_chain(session), head.seq, head.digest).ok
    assert len(rows) == 41 and head.seq == 41
    assert len({row.message_id for row in rows}) == 40
    # Each worker learnt its senders' slots are taken (from its claims won and lost):
    # it builds no reply for them now. Sender s0 writes through worker 0, s1 through 1.
    for number, worker in enumerate(writer):
        sender = f"s{number}@customer.example"
        assert worker.reply_slots.taken(sender, "rejected_new_ticket", rows[-1].decided_at)


def test_large_and_small_messages_share_the_pipe(gate: Mailgate, writer: list[Mailgate]) -> None:
    """A 3 MB message (stored by blob I/O on SQLite) with small ones around it."""
    big = new_ticket(90, "big@customer.example") + (b"x" * 76 + b"\r\n") * 40_000
    results: dict[str, int | None] = {}

    def deliver(number: int, raw: bytes, sender: str) -> None:
        results[sender] = writer[number % 2].ingest(raw, envelope(sender)).id

    threads = [threading.Thread(target=deliver, args=(0, big, "big@customer.example"))] + [
        threading.Thread(
            target=deliver, args=(n, new_ticket(n, f"m{n}@c.example"), f"m{n}@c.example")
        )
        for n in range(1, 9)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 9 and all(results.values())
    with Session(gate.engine) as session:
        row = session.get(DecisionRow, results["big@customer.example"])
        assert row is not None
        assert load_raw(session, row.raw_sha256) == big


def test_a_writer_gone_fails_each_call_as_transient(gate: Mailgate) -> None:
    writer_end, worker_end = Pipe()
    worker = Mailgate(gate.runtime)
    client = RecordingClient(worker_end, worker.recorder_here())
    worker.recorder = client
    writer_end.close()  # as if the writer process had died
    with pytest.raises(TransientError):
        worker.ingest(new_ticket(1, "a@customer.example"), envelope("a@customer.example"))
    client.close()
    with Session(gate.engine) as session:
        assert session.scalars(select(DecisionRow)).all() == []


def test_serve_stops_when_its_writer_dies_and_never_acknowledges_without_it(
    tmp_path: Path,
) -> None:
    port = free_port()
    env = cli_env(tmp_path / "var", MAILGATE_SMTP_LISTEN=f"127.0.0.1:{port}")
    process = subprocess.Popen(
        [sys.executable, "-m", "worker", "serve", "--workers", "2"],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        writer_pid = None
        for line in process.stderr:
            event = json.loads(line)
            if event.get("event") == "writer_started":
                writer_pid = int(event["pid"])
            if event.get("event") == "mailgate_started":
                break
        writer_gone = threading.Event()

        def watch(stream: Any) -> None:
            for line in stream:  # the rest of the log: the supervisor's note of the writer's end
                if '"writer_exited"' in line:
                    writer_gone.set()

        threading.Thread(target=watch, args=(process.stderr,), daemon=True).start()
        assert writer_pid is not None
        raw = new_ticket(1, "alice@customer.example")
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            assert smtp.sendmail("alice@customer.example", ["support@wildix.com"], raw) == {}
        os.kill(writer_pid, signal.SIGKILL)
        assert writer_gone.wait(30), "the supervisor saw its writer die"
        refused = 0
        late = new_ticket(2, "b@customer.example")
        try:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
                smtp.sendmail("b@customer.example", ["support@wildix.com"], late)
        except smtplib.SMTPResponseException as error:  # 451 after DATA, or 421 when stopping
            refused = error.smtp_code
        except smtplib.SMTPRecipientsRefused as error:  # 421 at RCPT: stopping
            refused = next(iter(error.recipients.values()))[0]
        except (smtplib.SMTPServerDisconnected, ConnectionError):
            refused = 421  # already stopped: the connection is refused, also "retry later"
        assert refused in (421, 451), refused
        assert process.wait(30) != 0, "a dead writer stops the service, not a silent one"
    finally:
        if process.poll() is None:  # a failed assertion above: stop our serve by its PIDs
            children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
            for child in children.read_text().split() if children.exists() else []:
                os.kill(int(child), signal.SIGKILL)
            process.kill()
            process.wait(10)
    gate = Mailgate.open(make_settings(tmp_path))
    with Session(gate.engine) as session:
        assert [r.message_id for r in session.scalars(select(DecisionRow))] == [
            "<w-1@customer.example>"
        ]
