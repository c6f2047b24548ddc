"""The HTTP side of `mailgate serve` over real HTTP: health, metrics, the API and its token."""

from __future__ import annotations

import json
import smtplib
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import RunningServer, add_standard_tickets, fixture_bytes, make_settings, with_headers
from sqlalchemy import create_engine

from worker.pipeline import Mailgate

TOKEN = "s3cret-token-0123456789abcdef"


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[tuple[Mailgate, RunningServer]]:
    gate = Mailgate.open(
        make_settings(
            tmp_path,
            database_url,
            smtp_listen="127.0.0.1:0",
            http_listen="127.0.0.1:0",
            api_token=TOKEN,
        )
    )
    add_standard_tickets(gate)
    running = RunningServer(gate)
    yield gate, running
    running.stop()
    gate.engine.dispose()


def call(
    running: RunningServer,
    path: str,
    token: str | None = TOKEN,
    method: str = "GET",
    body: Any = None,
) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{running.port('http')}{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Authorization": f"Bearer {token}"} if token else {},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            raw = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        raw, status = error.read(), error.code
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode()


def send(running: RunningServer, raw: bytes, sender: str) -> None:
    with smtplib.SMTP("127.0.0.1", running.port("smtp"), timeout=30) as smtp:
        smtp.sendmail(sender, ["support@wildix.com"], raw)


def test_health_and_readiness(served: tuple[Mailgate, RunningServer]) -> None:
    gate, running = served
    assert call(running, "/healthz", token=None) == (200, {"status": "ok"})
    status, ready = call(running, "/readyz", token=None)
    assert status == 200 and ready["ready"] and ready["checks"]["database"] == "ok"
    working = gate.read_engine
    gate.read_engine = create_engine(
        "postgresql+psycopg://nobody@127.0.0.1:9/none", connect_args={"connect_timeout": 2}
    )
    status, ready = call(running, "/readyz", token=None)
    gate.read_engine = working
    assert status == 503 and not ready["ready"]
    assert ready["checks"]["database"].startswith("unreachable")


def test_metrics_count_decisions_and_replies(served: tuple[Mailgate, RunningServer]) -> None:
    _, running = served
    send(running, fixture_bytes("new_ticket.eml"), "alice@customer.example")
    send(running, fixture_bytes("dsn.eml"), "")
    status, text = call(running, "/metrics", token=None)
    assert status == 200
    assert 'mailgate_decisions_total{decision="rejected_new_ticket",rule="new_ticket"} 1.0' in text
    assert (
        'mailgate_decisions_total{decision="ignored_auto_generated",rule="auto_generated"} 1.0'
    ) in text
    assert 'mailgate_replies_total{reason="auto_generated",status="suppressed"} 1.0' in text
    # Every pair of the chain table is a series from the start, at zero until it happens.
    assert (
        'mailgate_decisions_total{decision="rejected_closed_ticket",rule="closed_ticket"} 0.0'
    ) in text
    assert 'mailgate_decisions_total{decision="accepted_followup",rule="followup"} 0.0' in text
    assert "mailgate_decision_seconds_count" in text
    assert "mailgate_outbox_oldest_age_seconds 0.0" in text


@pytest.mark.parametrize("token", [None, "wrong", TOKEN + "x", ""])
def test_api_refuses_without_the_token(
    served: tuple[Mailgate, RunningServer], token: str | None
) -> None:
    _, running = served
    for path in ("/api/decisions", "/api/decisions/1", "/api/summary"):
        status, body = call(running, path, token=token)
        assert status == 401 and body == {"error": "unauthorized"}
    status, _ = call(
        running, "/api/tickets/5", token=token, method="PUT", body={"kind": "technical"}
    )
    assert status == 401


def test_api_decisions_filters_and_detail(served: tuple[Mailgate, RunningServer]) -> None:
    _, running = served
    send(running, fixture_bytes("new_ticket.eml"), "alice@customer.example")
    send(running, fixture_bytes("followup_subject_tag.eml"), "bob@partner.example")
    status, body = call(running, "/api/decisions")
    assert status == 200 and len(body["decisions"]) == 2
    _, rejected = call(running, "/api/decisions?decision=rejected_new_ticket")
    assert [d["envelope_from"] for d in rejected["decisions"]] == ["alice@customer.example"]
    assert rejected["decisions"][0]["reply"]["delivery"] == "spooled"
    _, by_ticket = call(running, "/api/decisions?ticket=1001&channel=smtp")
    assert [d["decision"] for d in by_ticket["decisions"]] == ["accepted_followup"]
    _, by_sender = call(running, "/api/decisions?sender=BOB@partner.example")
    assert len(by_sender["decisions"]) == 1
    assert call(running, "/api/decisions?decision=nope")[0] == 400
    assert call(running, "/api/decisions?since=yesterday")[0] == 400
    detail_id = rejected["decisions"][0]["id"]
    status, detail = call(running, f"/api/decisions/{detail_id}")
    assert status == 200
    assert [step["rule"] for step in detail["trace"]][-2:] == ["new_ticket", "reply_language"]
    assert detail["headers"]["Subject"] == ["W-AIR handsets do not register after firmware update"]
    assert call(running, "/api/decisions/999999")[0] == 404
    _, summary = call(running, "/api/summary")
    assert summary["counts"] == {"rejected_new_ticket": 1, "accepted_followup": 1}


def test_put_ticket_keeps_the_directory_current(served: tuple[Mailgate, RunningServer]) -> None:
    """The ticket system upserts a ticket; the next follow-up from its participant is accepted."""
    _, running = served
    status, body = call(
        running,
        "/api/tickets/7007",
        method="PUT",
        body={"kind": "technical", "participants": ["dana@partner.example"]},
    )
    assert (status, body["ticket"]) == (200, "7007")
    raw = with_headers(
        fixture_bytes("followup_subject_tag.eml"),
        Subject="Re: [Ticket#7007] new",
        From="dana@partner.example",
        Message_ID="<dana-1@partner.example>",
    )
    send(running, raw, "dana@partner.example")
    _, found = call(running, "/api/decisions?ticket=7007")
    assert [d["decision"] for d in found["decisions"]] == ["accepted_followup"]
    status, error = call(running, "/api/tickets/7008", method="PUT", body={"kind": "billing"})
    assert status == 400 and "field kind" in error["error"]
    status, _ = call(running, "/api/tickets/7008", method="PUT", body=["not", "an", "object"])
    assert status == 400
