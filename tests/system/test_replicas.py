"""Three replicas on one PostgreSQL database: every message is delivered to two of them at
once while one replica is SIGKILLed and restarted mid-load, and every automatic reply
leaves through one shared relay. Afterwards each message has exactly one decision, each
sender exactly one reply in the window, no reply reached the relay twice, and the audit
chain verifies."""

from __future__ import annotations

import smtplib
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from helpers import (
    RelaySink,
    ServeProcess,
    add_standard_tickets,
    cli_env,
    fixture_bytes,
    free_port,
    make_settings,
    reset_postgres,
    with_headers,
)
from sqlmodel import Session, col, select

from worker.pipeline import Mailgate
from worker.store.models import DecisionRow, OutboxRow

MESSAGES, SENDERS, CLIENTS = 90, 15, 3
KILL_AFTER = MESSAGES // 3  # acknowledged messages before the kill: mid-load by construction


class Replica(ServeProcess):
    """One `mailgate serve` process with its own data dir and port, on the shared database."""

    stop_seconds = 60.0

    def __init__(self, root: Path, database_url: str, relay_url: str) -> None:
        self.port = free_port()
        super().__init__(
            cli_env(
                str(root / "var"),
                MAILGATE_DATABASE_URL=database_url,
                MAILGATE_SMTP_LISTEN=f"127.0.0.1:{self.port}",
                MAILGATE_RELAY_URL=relay_url,
            )
        )


class Load:
    """Client threads that deliver each message to two replicas at the same moment."""

    def __init__(self, replicas: list[Replica]) -> None:
        self.replicas = replicas
        self.base = fixture_bytes("new_ticket.eml")
        self.acked: Counter[str] = Counter()
        self.retries = 0
        self.changed = threading.Condition()

    def message(self, number: int) -> tuple[str, str, bytes]:
        message_id = f"<replica-{number}@customer.example>"
        sender = f"s{number % SENDERS}@customer.example"  # several messages per sender
        raw = with_headers(self.base, Message_ID=message_id, From=sender, Return_Path="")
        return message_id, sender, raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")

    def deliver(self, replica: Replica, message_id: str, sender: str, raw: bytes) -> None:
        while True:  # an MTA's retry: until this replica acknowledges with 250
            try:
                with smtplib.SMTP("127.0.0.1", replica.port, timeout=30) as smtp:
                    smtp.sendmail(sender, ["support@wildix.com"], raw)
                break
            except (smtplib.SMTPException, OSError):
                with self.changed:
                    self.retries += 1
                time.sleep(0.05)  # client back-off while the replica is down
        with self.changed:
            self.acked[message_id] += 1
            self.changed.notify_all()

    def client(self, first: int) -> None:
        for number in range(first, MESSAGES, CLIENTS):
            message_id, sender, raw = self.message(number)
            pair = (self.replicas[number % 3], self.replicas[(number + 1) % 3])
            other = threading.Thread(target=self.deliver, args=(pair[1], message_id, sender, raw))
            other.start()
            self.deliver(pair[0], message_id, sender, raw)
            other.join(120)

    def wait_fully_acked(self, count: int, timeout: float) -> None:
        with self.changed:
            done = self.changed.wait_for(
                lambda: sum(1 for n in self.acked.values() if n >= 2) >= count, timeout
            )
        assert done, f"only {len(self.acked)} messages acknowledged"


def test_three_replicas_two_deliveries_each_and_a_kill(tmp_path: Path, postgres_url: str) -> None:
    reset_postgres(postgres_url)
    gate = Mailgate.open(make_settings(tmp_path / "setup", postgres_url))
    add_standard_tickets(gate)
    relay = RelaySink()
    replicas = [Replica(tmp_path / f"r{n}", postgres_url, relay.url) for n in range(3)]
    for replica in replicas:
        replica.start()  # one after the other: the first one migrates the fresh database
    load = Load(replicas)
    clients = [threading.Thread(target=load.client, args=(n,)) for n in range(CLIENTS)]
    for thread in clients:
        thread.start()
    load.wait_fully_acked(KILL_AFTER, 120)
    replicas[2].kill()
    replicas[2].start()
    for thread in clients:
        thread.join(300)
    load.wait_fully_acked(MESSAGES, 60)
    assert [replica.stop() for replica in replicas] == [0, 0, 0]
    drain_outbox(gate, replicas[0], relay)
    relay.stop()

    with Session(gate.engine) as session:
        decisions = session.scalars(select(DecisionRow)).all()
        outbox = session.scalars(select(OutboxRow)).all()
    assert load.retries > 0, "the kill interrupted deliveries (else the test proves nothing)"
    assert_decided_once(decisions)
    assert_one_reply_per_sender(outbox, relay)
    verify = subprocess.run(
        [sys.executable, "-m", "worker", "audit", "verify"],
        env=replicas[0].env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert verify.returncode == 0, verify.stderr
    assert f"{len(decisions)} decisions" in verify.stdout
    gate.engine.dispose()


def drain_outbox(gate: Mailgate, replica: Replica, relay: RelaySink) -> None:
    """Relay what is still queued: one replica runs until the relay has every such reply.

    Rows leased by the killed replica stay ``sending`` until the lease expires (minutes);
    they are left alone, which is what keeps a half-sent reply from going out twice.
    """
    with Session(gate.engine) as session:
        pending = session.scalars(
            select(OutboxRow).where(col(OutboxRow.status).in_(("queued", "retry")))
        ).all()
    if pending:
        replica.start()
        relay.wait_for(len(relay.messages) + len(pending), timeout=60)
        assert replica.stop() == 0


def assert_decided_once(rows: Sequence[DecisionRow]) -> None:
    per_message = Counter(row.message_id for row in rows)
    decided = Counter(row.message_id for row in rows if row.decision != "duplicate")
    expected = {f"<replica-{n}@customer.example>" for n in range(MESSAGES)}
    assert set(decided) == expected, "an acknowledged message has no decision"
    assert max(decided.values()) == 1, "a message was decided twice"
    # Both deliveries of every message were acknowledged, so each left a committed row.
    assert min(per_message[m] for m in expected) >= 2


def assert_one_reply_per_sender(outbox: Sequence[OutboxRow], relay: RelaySink) -> None:
    rows = [row for row in outbox if row.kind == "auto_reply"]
    senders = Counter(row.rcpt_to for row in rows)
    assert set(senders) == {f"s{n}@customer.example" for n in range(SENDERS)}
    assert max(senders.values()) == 1, "a sender got two replies in one window"
    relayed = [_message_id(raw) for _, _, raw in relay.messages]
    assert len(relayed) == len(set(relayed)), "a reply reached the relay twice"
    by_id = {row.message_id: row for row in rows}
    assert set(relayed) <= set(by_id)
    sent = {row.message_id for row in rows if row.status == "sent"}
    assert sent <= set(relayed), "a reply marked sent never reached the relay"
    unsent = [row for row in rows if row.message_id not in relayed]
    # Only the killed replica's leased rows may still wait; they were never lost.
    assert all(row.status == "sending" and row.claimed_until for row in unsent)


def _message_id(raw: bytes) -> str:
    from email import message_from_bytes
    from email.policy import compat32

    value = message_from_bytes(raw, policy=compat32)["Message-ID"]
    return str(value).strip()
