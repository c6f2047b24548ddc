"""The outbound dispatcher against a real relay (an aiosmtpd sink) and a real HTTP endpoint."""

from __future__ import annotations

import email
import hashlib
import hmac
import json
import smtplib
import threading
from collections.abc import Iterator
from datetime import timedelta
from email.policy import default
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from helpers import (
    SECRET,
    RelaySink,
    RunningServer,
    add_standard_tickets,
    envelope,
    fixture_bytes,
    make_settings,
    with_headers,
)
from sqlmodel import Session, col, select

from worker.clock import utcnow
from worker.dispatcher import LEASE, Dispatcher
from worker.pipeline import Mailgate
from worker.store.models import OutboxRow


@pytest.fixture
def relay() -> Iterator[RelaySink]:
    sink = RelaySink()
    yield sink
    sink.stop()


def relayed_gate(tmp_path: Path, database_url: str, relay: RelaySink, **extra: Any) -> Mailgate:
    gate = Mailgate.open(
        make_settings(
            tmp_path, database_url, relay_url=relay.url, smtp_listen="127.0.0.1:0", **extra
        )
    )
    add_standard_tickets(gate)
    return gate


def outbox_rows(gate: Mailgate) -> list[OutboxRow]:
    with Session(gate.engine) as session:
        return list(session.scalars(select(OutboxRow).order_by(col(OutboxRow.id))).all())


def test_reply_reaches_the_relay_with_null_sender(
    tmp_path: Path, database_url: str, relay: RelaySink
) -> None:
    """New-ticket mail over SMTP: one reply at the relay, MAIL FROM:<>, RFC 3834 headers."""
    gate = relayed_gate(tmp_path, database_url, relay)
    running = RunningServer(gate)
    try:
        with smtplib.SMTP("127.0.0.1", running.port("smtp"), timeout=30) as smtp:
            smtp.sendmail(
                "alice@customer.example", ["support@wildix.com"], fixture_bytes("new_ticket.eml")
            )
        relay.wait_for(1)
    finally:
        running.stop()
    mail_from, rcpts, body = relay.messages[0]
    assert mail_from == "<>" and rcpts == ["alice@customer.example"]  # MAIL FROM:<>
    reply = email.message_from_bytes(body, policy=default)
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["In-Reply-To"] == "<20261123091158.4711@mail.customer.example>"
    assert str(reply["Subject"]).startswith("Auto: ")
    assert [r.status for r in outbox_rows(gate)] == ["sent"]
    assert not (gate.settings.outbox_dir).exists() or not list(gate.settings.outbox_dir.iterdir())


class Hook(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []
    status = 200
    event = threading.Event()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append((dict(self.headers), body))
        self.send_response(Hook.status)
        self.end_headers()
        Hook.event.set()

    def log_message(self, *args: Any) -> None:
        pass


def test_followup_is_forwarded_by_mail_and_webhook(
    tmp_path: Path, database_url: str, relay: RelaySink
) -> None:
    """accepted_followup: the original attached as message/rfc822, and a signed POST."""
    http = HTTPServer(("127.0.0.1", 0), Hook)
    Hook.received, Hook.status = [], 200
    threading.Thread(target=http.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{http.server_address[1]}/tickets/inbound"
    gate = relayed_gate(
        tmp_path, database_url, relay, forward_to="tickets@internal.example", forward_url=url
    )
    try:
        raw = fixture_bytes("followup_subject_tag.eml")
        decision = gate.ingest(raw, envelope("bob@partner.example"))
        assert decision.decision == "accepted_followup"
        Dispatcher(gate.engine, relay.url, SECRET.encode()).run_once()
    finally:
        http.shutdown()
    relay.wait_for(1)
    _mail_from, rcpts, body = relay.messages[0]
    assert rcpts == ["tickets@internal.example"]
    forward = email.message_from_bytes(body, policy=default)
    assert forward["X-Mailgate-Ticket"] == "1001"
    assert forward["X-Mailgate-Decision"] == "accepted_followup"
    attached = [p for p in forward.walk() if p.get_content_type() == "message/rfc822"]
    assert len(attached) == 1
    original = attached[0].get_payload(0)
    assert original["Message-ID"] == "<CAF1001-reply-1@mail.partner.example>"
    assert len(Hook.received) == 1
    headers, payload = Hook.received[0]
    expected = "sha256=" + hmac.new(SECRET.encode(), payload, hashlib.sha256).hexdigest()
    assert headers["X-Mailgate-Signature"] == expected
    data = json.loads(payload)
    assert data["ticket"] == "1001" and data["decision"] == "accepted_followup"
    import base64

    assert base64.b64decode(data["raw_base64"]) == raw
    assert {r.status for r in outbox_rows(gate)} == {"sent"}


def test_relay_down_keeps_replies_queued_and_delivers_each_once(
    tmp_path: Path, database_url: str, relay: RelaySink
) -> None:
    """Connection refused: retry with backoff; once the relay is back, each sent once."""
    port = relay.port
    relay.stop()
    gate = relayed_gate(tmp_path, database_url, relay)
    for number in range(3):
        raw = with_headers(fixture_bytes("new_ticket.eml"), Message_ID=f"<down-{number}@x.example>")
        gate.ingest(raw, envelope(f"user{number}@customer.example"))
    dispatcher = Dispatcher(gate.engine, relay.url, SECRET.encode())
    assert dispatcher.run_once() == 3
    rows = outbox_rows(gate)
    assert {r.status for r in rows} == {"retry"}
    assert all(r.next_attempt_at > utcnow() for r in rows), "backoff, not a busy loop"
    assert dispatcher.run_once() == 0, "nothing is due before its backoff"
    from aiosmtpd.controller import Controller

    relay.controller = Controller(relay.controller.handler, hostname="127.0.0.1", port=port)
    relay.controller.start()
    later = utcnow() + timedelta(hours=2)
    assert dispatcher.run_once(now=later) == 3
    assert dispatcher.run_once(now=later + timedelta(hours=2)) == 0
    relay.wait_for(3)
    assert sorted(m[1][0] for m in relay.messages) == [
        f"user{n}@customer.example" for n in range(3)
    ]
    assert {r.status for r in outbox_rows(gate)} == {"sent"}


def test_temporary_and_permanent_relay_answers(
    tmp_path: Path, database_url: str, relay: RelaySink
) -> None:
    """4xx is retried; 5xx is recorded as failed and never retried."""
    gate = relayed_gate(tmp_path, database_url, relay)
    gate.ingest(fixture_bytes("new_ticket.eml"), envelope("alice@customer.example"))
    dispatcher = Dispatcher(gate.engine, relay.url, SECRET.encode())
    relay.answer = "451 4.7.1 Try again later"
    dispatcher.run_once()
    assert [(r.status, r.last_error) for r in outbox_rows(gate)] == [
        ("retry", "451 4.7.1 Try again later")
    ]
    relay.answer = "550 5.1.1 No such user"
    dispatcher.run_once(now=utcnow() + timedelta(hours=2))
    assert [(r.status, r.last_error) for r in outbox_rows(gate)] == [
        ("failed", "550 5.1.1 No such user")
    ]
    assert dispatcher.run_once(now=utcnow() + timedelta(days=1)) == 0


def test_dead_letter_after_maximum_delivery_age(
    tmp_path: Path, database_url: str, relay: RelaySink
) -> None:
    """A row that could not be handed over within the policy's maximum age goes dead."""
    gate = relayed_gate(tmp_path, database_url, relay)
    gate.ingest(fixture_bytes("new_ticket.eml"), envelope("alice@customer.example"))
    dispatcher = Dispatcher(gate.engine, relay.url, SECRET.encode())
    assert dispatcher.run_once(now=utcnow() + timedelta(hours=73)) == 1
    assert [r.status for r in outbox_rows(gate)] == ["dead"]
    assert relay.messages == []


def test_crash_between_send_and_mark_resends_once_with_same_message_id(
    tmp_path: Path, database_url: str, relay: RelaySink
) -> None:
    """A claimed, sent, unmarked row is resent once after its lease, same Message-ID."""
    gate = relayed_gate(tmp_path, database_url, relay)
    gate.ingest(fixture_bytes("new_ticket.eml"), envelope("alice@customer.example"))
    dispatcher = Dispatcher(gate.engine, relay.url, SECRET.encode())
    now = utcnow()
    claimed = dispatcher.claim(now)
    assert len(claimed) == 1
    dispatcher.send(claimed[0])  # ... and the process dies before mark()
    assert dispatcher.run_once(now=now + timedelta(seconds=10)) == 0, "lease still held"
    assert dispatcher.run_once(now=now + LEASE + timedelta(seconds=1)) == 1
    assert dispatcher.run_once(now=now + timedelta(hours=5)) == 0
    relay.wait_for(2)
    ids = {email.message_from_bytes(m[2])["Message-ID"] for m in relay.messages}
    assert len(relay.messages) == 2 and len(ids) == 1
    assert [r.status for r in outbox_rows(gate)] == ["sent"]
