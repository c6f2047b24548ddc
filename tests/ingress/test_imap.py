"""IMAP ingress against a real Dovecot started by the test: exactly-once, moves after commit."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import (
    Dovecot,
    add_standard_tickets,
    cli_env,
    fixture_bytes,
    make_settings,
    outbox_files,
    with_headers,
)
from sqlmodel import Session, select

from worker.decision import Decision
from worker.ingress.imap import ImapTarget, MailboxWorker
from worker.pipeline import Mailgate
from worker.store.models import DecisionRow


@pytest.fixture
def dovecot() -> Iterator[Dovecot]:
    server = Dovecot()
    yield server
    server.close()


def imap_gate(tmp_path: Path, database_url: str | None, dovecot: Dovecot) -> Mailgate:
    gate = Mailgate.open(
        make_settings(tmp_path, database_url, imap_url=dovecot.url, imap_idle_seconds=30)
    )
    add_standard_tickets(gate)
    return gate


class Drain:
    """A mailbox worker in a thread, with events the test waits on instead of sleeping."""

    def __init__(
        self,
        gate: Mailgate,
        dovecot: Dovecot,
        on_batch: Callable[[list[Decision]], None] | None = None,
    ) -> None:
        self.stop = threading.Event()
        self.changed = threading.Condition()
        self.extra = on_batch
        self.worker = MailboxWorker(
            gate, ImapTarget.parse(dovecot.url), self.stop, on_batch=self._batch
        )
        self.worker.start()

    def _batch(self, decisions: list[Decision]) -> None:
        if self.extra is not None:
            self.extra(decisions)
        with self.changed:
            self.changed.notify_all()

    def wait_decided(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while self.worker.health.decided < count:
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"decided {self.worker.health.decided} of {count}"
                self.changed.wait(remaining)

    def close(self) -> None:
        self.stop.set()
        self.worker.join(30)
        assert not self.worker.is_alive()


def rows(gate: Mailgate) -> list[DecisionRow]:
    with Session(gate.engine) as session:
        return list(session.scalars(select(DecisionRow).order_by(DecisionRow.seq)).all())


def test_drain_mixed_inbox_into_the_right_folders(
    tmp_path: Path, database_url: str, dovecot: Dovecot
) -> None:
    """New-ticket → Rejected, follow-up and bounce → Processed, garbage → Quarantine."""
    gate = imap_gate(tmp_path, database_url, dovecot)
    dovecot.append(fixture_bytes("new_ticket.eml"))
    dovecot.append(fixture_bytes("followup_subject_tag.eml"))
    dovecot.append(fixture_bytes("dsn.eml"))
    dovecot.append(b"From: x@y.example\r\nMessage-ID: <big@y.example>\r\n\r\n" + b"x" * 3000)
    small = Mailgate.open(
        make_settings(tmp_path, database_url, imap_url=dovecot.url, max_message_bytes=2000)
    )
    add_standard_tickets(small)
    drain = Drain(small, dovecot)
    try:
        drain.wait_decided(4)
    finally:
        drain.close()
    decided = {r.message_id: (r.decision, r.channel) for r in rows(gate)}
    assert decided == {
        "<20261123091158.4711@mail.customer.example>": ("rejected_new_ticket", "imap"),
        "<CAF1001-reply-1@mail.partner.example>": ("accepted_followup", "imap"),
        "<dsn-1@mx.customer.example>": ("ignored_auto_generated", "imap"),
        "<big@y.example>": ("quarantined", "imap"),
    }
    assert dovecot.message_ids("INBOX") == []
    assert dovecot.message_ids("Rejected") == ["<20261123091158.4711@mail.customer.example>"]
    assert sorted(dovecot.message_ids("Processed")) == [
        "<CAF1001-reply-1@mail.partner.example>",
        "<dsn-1@mx.customer.example>",
    ]
    assert dovecot.message_ids("Quarantine") == ["<big@y.example>"]
    assert len(outbox_files(small)) == 1, "one reply: to the new-ticket sender"


def test_message_appended_during_idle_is_decided_within_seconds(
    tmp_path: Path, dovecot: Dovecot
) -> None:
    """IDLE wakes the worker; the message is decided and moved in seconds, not minutes."""
    gate = imap_gate(tmp_path, None, dovecot)
    drain = Drain(gate, dovecot)
    try:
        deadline = time.monotonic() + 30
        while drain.worker.health.state != "idle":  # readiness probe of the worker thread
            assert time.monotonic() < deadline, drain.worker.health
            time.sleep(0.05)
        started = time.monotonic()
        dovecot.append(fixture_bytes("new_ticket.eml"))
        drain.wait_decided(1, timeout=20)
        elapsed = time.monotonic() - started
    finally:
        drain.close()
    assert elapsed < 5, f"took {elapsed:.1f} s"
    assert dovecot.message_ids("Rejected") == ["<20261123091158.4711@mail.customer.example>"]


def new_ticket_from(number: int) -> bytes:
    return with_headers(
        fixture_bytes("new_ticket.eml"),
        Message_ID=f"<bulk-{number}@customer.example>",
        Return_Path=f"<user{number}@customer.example>",
        From=f"user{number}@customer.example",
    )


def test_batches_are_moved_whole_and_only_after_commit(
    tmp_path: Path, database_url: str, dovecot: Dovecot
) -> None:
    """After each batch's move the mailbox holds exactly the batches moved so far, every
    message of them committed and its reply spooled, and every other message in INBOX."""
    gate = imap_gate(tmp_path, database_url, dovecot)
    count = 130  # three batches: 50, 50, 30
    client = dovecot.client()
    for number in range(count):
        client.append("INBOX", new_ticket_from(number))
    client.logout()
    seen: list[tuple[set[str | None], list[str], list[str], int]] = []

    def look(decisions: list[Decision]) -> None:
        # Called on the worker's thread once a batch is committed, spooled and moved.
        committed = {r.message_id for r in rows(gate)}
        moved, waiting = dovecot.message_ids("Rejected"), dovecot.message_ids("INBOX")
        seen.append((committed, moved, waiting, len(outbox_files(gate))))

    drain = Drain(gate, dovecot, on_batch=look)
    try:
        drain.wait_decided(count)
    finally:
        drain.close()
    everything = {f"<bulk-{number}@customer.example>" for number in range(count)}
    assert [len(moved) for _, moved, _, _ in seen] == [50, 100, 130]
    for committed, moved, waiting, spooled in seen:
        assert set(moved) <= committed, "moved before its decision was committed"
        assert len(set(moved)) == len(moved) and not set(moved) & set(waiting)
        assert set(moved) | set(waiting) == everything, "a message left INBOX undecided"
        assert spooled == len(moved), "replies spooled for exactly the moved batches"
    assert len(outbox_files(gate)) == count, "one reply each"


def test_dovecot_restart_mid_drain_loses_nothing_and_decides_once(
    tmp_path: Path, database_url: str, dovecot: Dovecot
) -> None:
    """Dovecot goes away after the first batch: reconnect with backoff, then finish."""
    gate = imap_gate(tmp_path, database_url, dovecot)
    count = 130
    client = dovecot.client()
    for number in range(count):
        client.append("INBOX", new_ticket_from(number))
    client.logout()
    stopped = threading.Event()

    def kill_after_first_batch(decisions: list[Decision]) -> None:
        if not stopped.is_set():
            stopped.set()
            dovecot.stop()

    drain = Drain(gate, dovecot, on_batch=kill_after_first_batch)
    try:
        assert stopped.wait(60)
        deadline = time.monotonic() + 30
        while drain.worker.health.state != "backoff":
            assert time.monotonic() < deadline, drain.worker.health
            time.sleep(0.05)
        dovecot.start()
        drain.wait_decided(count)
    finally:
        drain.close()
    decided = [r for r in rows(gate) if r.decision != "duplicate"]
    assert len(decided) == count
    assert len({r.message_id for r in decided}) == count
    assert dovecot.message_ids("INBOX") == []
    assert len(dovecot.message_ids("Rejected")) == count
    assert len(outbox_files(gate)) == count, "each sender got exactly one reply"


def test_decided_but_not_moved_is_moved_once_without_second_reply(
    tmp_path: Path, database_url: str, dovecot: Dovecot
) -> None:
    """The state a crash between commit and move leaves: decided, still in INBOX."""
    gate = imap_gate(tmp_path, database_url, dovecot)
    raw = fixture_bytes("new_ticket.eml")
    dovecot.append(raw)
    from helpers import envelope

    first = gate.ingest(raw, envelope("alice@customer.example", channel="imap"))
    assert first.reply.status == "queued"
    drain = Drain(gate, dovecot)
    try:
        drain.wait_decided(1)
    finally:
        drain.close()
    assert [r.decision for r in rows(gate)] == ["rejected_new_ticket", "duplicate"]
    assert dovecot.message_ids("Rejected") == ["<20261123091158.4711@mail.customer.example>"]
    assert len(outbox_files(gate)) == 1


def test_sigkill_mid_drain_then_restart(tmp_path: Path, dovecot: Dovecot) -> None:
    """`mailgate serve` SIGKILLed five times while draining; the last start finishes."""
    count = 300
    client = dovecot.client()
    for number in range(count):
        client.append("INBOX", new_ticket_from(number))
    client.logout()
    env = cli_env(
        str(tmp_path / "var"),
        MAILGATE_SMTP_LISTEN="off",
        MAILGATE_HTTP_LISTEN="off",
        MAILGATE_IMAP_URL=dovecot.url,
        MAILGATE_IMAP_LEASE_SECONDS="3",
    )
    gate = Mailgate.open(make_settings(tmp_path))

    logs: list[Path] = []

    def serve() -> subprocess.Popen[bytes]:
        logs.append(tmp_path / f"serve-{len(logs)}.log")  # one per process: whose line is whose
        return subprocess.Popen(
            [sys.executable, "-m", "worker", "serve"], env=env, stderr=open(logs[-1], "ab")
        )

    process = serve()
    kills = sorted(random.sample(range(1, count - 60), 5))  # five random points of the drain
    for threshold in kills:
        deadline = time.monotonic() + 60
        while len([r for r in rows(gate) if r.decision != "duplicate"]) < threshold:
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)  # watching the drain advance, to kill it at that point
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        process = serve()
    try:
        deadline = time.monotonic() + 180
        while len([r for r in rows(gate) if r.decision != "duplicate"]) < count or (
            dovecot.message_ids("INBOX")
        ):
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        # The drain may have ended under an earlier process: stop this one only once it
        # has started, as systemd would (a signal during the interpreter's own start-up
        # is not ours to handle).
        while b"mailgate_started" not in logs[-1].read_bytes():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    decided = [r for r in rows(gate) if r.decision != "duplicate"]
    assert len(decided) == count == len({r.message_id for r in decided})
    assert len(dovecot.message_ids("Rejected")) == count
    assert len(outbox_files(gate)) == count, "no second reply to anyone"


def test_without_move_uses_copy_and_uid_expunge_only(tmp_path: Path) -> None:
    """No MOVE capability: COPY + \\Deleted + UID EXPUNGE; others' \\Deleted mail stays."""
    server = Dovecot(without_move=True)
    try:
        server.append(
            b"From: other@x.example\r\nMessage-ID: <keep-me@x.example>\r\n\r\nhi\r\n",
            flags=(b"\\Deleted",),
        )
        server.append(fixture_bytes("new_ticket.eml"))
        gate = imap_gate(tmp_path, None, server)
        client = server.client()
        assert b"MOVE" not in client.capabilities()
        client.logout()
        drain = Drain(gate, server)
        try:
            drain.wait_decided(1)
        finally:
            drain.close()
        assert server.message_ids("INBOX") == ["<keep-me@x.example>"]
        assert [r.message_id for r in rows(gate)] == ["<20261123091158.4711@mail.customer.example>"]
        assert server.message_ids("Rejected") == ["<20261123091158.4711@mail.customer.example>"]
    finally:
        server.close()


def test_imap_check_reports_without_changing_anything(tmp_path: Path, dovecot: Dovecot) -> None:
    """`mailgate imap check` lists capabilities and missing folders; creates none."""
    env = cli_env(str(tmp_path / "var"), MAILGATE_IMAP_URL=dovecot.url)
    result = subprocess.run(
        [sys.executable, "-m", "worker", "imap", "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "MOVE" in result.stdout and "UIDPLUS" in result.stdout
    assert "folder Processed: missing" in result.stdout
    client = dovecot.client()
    assert not client.folder_exists("Processed")
    client.logout()
    bad = dovecot.url.replace(":secret@", ":wrong@")
    env["MAILGATE_IMAP_URL"] = bad
    refused = subprocess.run(
        [sys.executable, "-m", "worker", "imap", "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1 and "login refused" in refused.stdout
