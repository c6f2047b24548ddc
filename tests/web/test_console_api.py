"""The console's API over real HTTP (SQLite and PostgreSQL): the message view and the raw
message, health cards, decisions per hour, the security headers, the cross-site check, and
the quick start's generated token."""

from __future__ import annotations

import json
import os
import stat
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import RunningServer, add_standard_tickets, envelope, fixture_bytes, make_settings
from hostile_mail import SCRIPT_SUBJECT, html_message
from sqlmodel import Session, select
from structlog.testing import capture_logs

from worker.clock import utcnow
from worker.pipeline import Mailgate
from worker.store.models import OutboxRow
from worker.web.console_token import announce_console, ensure_console_token, token_hint

TOKEN = "console-api-token-0123456789abcdef"


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[tuple[Mailgate, RunningServer]]:
    gate = Mailgate.open(
        make_settings(
            tmp_path, database_url, smtp_listen="off", http_listen="127.0.0.1:0", api_token=TOKEN
        )
    )
    add_standard_tickets(gate)
    earlier = utcnow() - timedelta(hours=5)
    gate.ingest_many(
        [
            (html_message(1), envelope("billing1@paypa1.example", at=earlier)),
            (fixture_bytes("followup_subject_tag.eml"), envelope("bob@partner.example")),
        ]
    )
    running = RunningServer(gate)
    yield gate, running
    running.stop()
    gate.engine.dispose()


def call(
    running: RunningServer, path: str, method: str = "GET", **headers: str
) -> tuple[int, bytes, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{running.port('http')}{path}",
        method=method,
        data=b"{}" if method != "GET" else None,
        headers={"Authorization": f"Bearer {TOKEN}", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers


def get_json(running: RunningServer, path: str) -> Any:
    status, body, _ = call(running, path)
    assert status == 200, body
    return json.loads(body)


def test_message_view_raw_message_and_unknown_ids(served: tuple[Mailgate, RunningServer]) -> None:
    _, running = served
    row = get_json(running, "/api/decisions?sender=billing1@paypa1.example")["decisions"][0]
    by_domain = get_json(running, "/api/decisions?sender=@PAYPA1.example")["decisions"]
    assert [d["public_id"] for d in by_domain] == [row["public_id"]], "a sender's domain"
    assert get_json(running, "/api/decisions?sender=@%25.example")["decisions"] == []
    view = get_json(running, f"/api/messages/{row['public_id']}")
    assert dict(view["message"]["headers"])["Subject"] == SCRIPT_SUBJECT
    assert "<script" not in view["message"]["html"] and view["may_read_raw"] is True
    status, raw, headers = call(running, f"/api/messages/{row['public_id']}/raw")
    assert status == 200 and raw == html_message(1)
    assert headers["Content-Security-Policy"].startswith("sandbox")
    assert headers["Content-Type"].startswith("text/plain")
    assert call(running, "/api/messages/aaaaaaaaaaaaaaaa")[0] == 404
    assert call(running, "/api/messages/..%2f..%2fetc")[0] == 404


def test_health_cards_and_decisions_per_hour(served: tuple[Mailgate, RunningServer]) -> None:
    gate, running = served
    with Session(gate.engine) as session:
        reply = session.exec(select(OutboxRow)).first()
        assert reply is not None
        reply.status = "dead"
        reply.last_error = "550 5.1.1 <billing1@paypa1.example>: no such user"
        session.add(reply)
        session.commit()
    cards = {card["key"]: card for card in get_json(running, "/api/health")["cards"]}
    assert {"listeners", "database", "imap", "outbox", "dead_letters", "relay", "oauth"} <= set(
        cards
    )
    assert cards["dead_letters"]["state"] == "bad" and cards["dead_letters"]["summary"] == (
        "1 given up"
    )
    assert cards["helpdesk"]["state"] == "warn", "no helpdesk and no forward: never silent"
    assert "nowhere to go" in cards["helpdesk"]["summary"]
    assert cards["held"]["summary"] == "nothing waiting"
    timeline = get_json(running, "/api/timeline?hours=24")
    assert len(timeline["hours"]) == 24
    counts = [hour["counts"] for hour in timeline["hours"] if hour["counts"]]
    assert counts == [{"rejected_new_ticket": 1}, {"accepted_followup": 1}], "5 h apart"
    assert call(running, "/api/timeline?hours=x")[0] == 400


def test_security_headers_and_cross_site_refusal(served: tuple[Mailgate, RunningServer]) -> None:
    _, running = served
    for path in ("/", "/static/console.js", "/api/summary"):
        status, _, headers = call(running, path)
        assert status == 200
        policy = headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy and headers["X-Content-Type-Options"] == "nosniff"
    assert call(running, "/static/../app.py")[0] == 404
    put = "/api/tickets/4004"
    assert call(running, put, "PUT", **{"Sec-Fetch-Site": "same-site"})[0] == 403
    assert call(running, put, "PUT", Origin="http://127.0.0.1.evil.example")[0] == 403
    same = f"http://127.0.0.1:{running.port('http')}"
    assert call(running, put, "PUT", Origin=same, **{"Sec-Fetch-Site": "same-origin"})[0] == 400


def test_the_quick_start_generates_a_private_console_token(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, None, http_listen="127.0.0.1:8025")
    assert settings.api_token is None
    with capture_logs() as logs:
        announce_console(settings)
    path = tmp_path / "var" / "console-token"
    token = path.read_text().strip()
    assert settings.api_token == token and len(token) >= 24
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    line = next(entry for entry in logs if entry["event"] == "console_token")
    assert line["url"] == "http://127.0.0.1:8025/" and line["token_file"] == str(path.resolve())
    assert token not in json.dumps(logs)
    assert str(path.resolve()) in token_hint(settings)
    again = make_settings(tmp_path, None)
    assert ensure_console_token(again) == path and again.api_token == token, "kept, not remade"
    own = make_settings(tmp_path, None, api_token=TOKEN)
    assert ensure_console_token(own) is None and own.api_token == TOKEN
    assert "MAILGATE_API_TOKEN" in token_hint(own), "a token set later: the file is not it"
    shared = make_settings(tmp_path / "pg", "postgresql+psycopg://u@127.0.0.1/db")
    assert ensure_console_token(shared) is None and shared.api_token is None
