"""The rejection log is a real log: the API filters in the database and pages with a cursor,
newest first, however many other decisions lie between the rejections."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from helpers import (
    RunningServer,
    add_standard_tickets,
    envelope,
    fixture_bytes,
    make_settings,
    with_headers,
)

from worker.clock import utcnow
from worker.pipeline import Mailgate

TOKEN = "decision-log-token-0123456789"
START = utcnow() - timedelta(days=2)


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[tuple[Mailgate, RunningServer]]:
    gate = Mailgate.open(
        make_settings(
            tmp_path, database_url, smtp_listen="off", http_listen="127.0.0.1:0", api_token=TOKEN
        )
    )
    add_standard_tickets(gate)
    messages = []
    for n in range(230):
        at = START + timedelta(minutes=n)
        if n % 50 == 0:  # 5 rejections, 45 follow-ups between each two
            raw, sender = fixture_bytes("new_ticket.eml"), f"user{n}@customer.example"
        else:
            raw, sender = fixture_bytes("followup_subject_tag.eml"), "bob@partner.example"
        raw = with_headers(raw, Message_ID=f"<log{n}@x.example>")
        messages.append((raw, envelope(sender, at=at, channel="imap" if n == 100 else "pipe")))
    gate.ingest_many(messages)
    running = RunningServer(gate)
    yield gate, running
    running.stop()
    gate.engine.dispose()


def get(running: RunningServer, **query: Any) -> dict[str, Any]:
    url = f"http://127.0.0.1:{running.port('http')}/api/decisions?{urlencode(query)}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)  # type: ignore[no-any-return]


def senders(page: dict[str, Any]) -> list[str]:
    return [d["envelope_from"] for d in page["decisions"]]


def test_rejections_page_by_cursor_newest_first(served: tuple[Mailgate, RunningServer]) -> None:
    _, running = served
    first = get(running, rejected="true", limit=2)
    assert senders(first) == ["user200@customer.example", "user150@customer.example"]
    second = get(running, rejected="true", limit=2, before=first["next"])
    assert senders(second) == ["user100@customer.example", "user50@customer.example"]
    last = get(running, rejected="true", limit=2, before=second["next"])
    assert senders(last) == ["user0@customer.example"] and last["next"] is None


def test_each_filter_narrows_in_the_database(served: tuple[Mailgate, RunningServer]) -> None:
    _, running = served
    everything = get(running, limit=1000)["decisions"]
    assert len(everything) == 230
    one = next(d for d in everything if d["envelope_from"] == "user150@customer.example")
    assert senders(get(running, id=one["public_id"])) == ["user150@customer.example"]
    assert senders(get(running, rejected="true", channel="imap")) == ["user100@customer.example"]
    assert len(get(running, decision="accepted_followup", limit=1000)["decisions"]) == 225
    assert len(get(running, ticket="1001", limit=1000)["decisions"]) == 225
    assert senders(get(running, sender="USER50@customer.example")) == ["user50@customer.example"]
    window = {
        "since": (START + timedelta(minutes=49)).isoformat(),
        "until": (START + timedelta(minutes=151)).isoformat(),
    }
    assert senders(get(running, rejected="true", **window)) == [
        "user150@customer.example",
        "user100@customer.example",
        "user50@customer.example",
    ]
