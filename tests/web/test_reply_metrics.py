"""Failed replies are visible: /metrics counts automatic replies by delivery state from the
database, so every replica reports the same numbers, whichever process sent them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import (
    SECRET,
    RelaySink,
    add_standard_tickets,
    envelope,
    fixture_bytes,
    make_settings,
    with_headers,
)
from prometheus_client import generate_latest

from worker.clock import utcnow
from worker.dispatcher import Dispatcher
from worker.pipeline import Mailgate
from worker.web.metrics import registry_for


@pytest.fixture
def relay() -> Iterator[RelaySink]:
    sink = RelaySink()
    yield sink
    sink.stop()


def scrape(gate: Mailgate) -> dict[str, float]:
    text = generate_latest(registry_for(gate.read_engine, dict)).decode()
    values = {}
    for line in text.splitlines():
        if line.startswith("mailgate_reply_") and not line.startswith("mailgate_replies"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def test_reply_delivery_states_and_oldest_age_are_exact_across_replicas(
    tmp_path: Path, database_url: str, relay: RelaySink
) -> None:
    settings = make_settings(tmp_path, database_url, relay_url=relay.url)
    deciding, scraping = Mailgate.open(settings), Mailgate.open(settings)  # two replicas
    add_standard_tickets(deciding)
    dispatcher = Dispatcher(deciding.engine, relay.url, SECRET.encode())
    try:

        def reject(number: int) -> None:
            raw = with_headers(fixture_bytes("new_ticket.eml"), Message_ID=f"<m{number}@x.example>")
            deciding.ingest(raw, envelope(f"user{number}@customer.example"))

        reject(1)
        dispatcher.run_once(now=utcnow() + timedelta(hours=73))  # never handed over: dead
        for number, answer in ((2, "250 2.0.0 OK"), (3, "550 5.1.1 No such user")):
            relay.answer = answer
            reject(number)
            dispatcher.run_once()
        relay.answer = "451 4.7.1 Try again later"
        reject(4)
        dispatcher.run_once()
        reject(5)  # not yet claimed by any dispatcher
        metrics = scrape(scraping)
    finally:
        deciding.engine.dispose()
        scraping.engine.dispose()
    assert {
        state: metrics[f'mailgate_reply_delivery{{state="{state}"}}']
        for state in ("sent", "retry", "failed", "dead", "queued", "sending", "spooled")
    } == {"sent": 1, "retry": 1, "failed": 1, "dead": 1, "queued": 1, "sending": 0, "spooled": 0}
    assert metrics["mailgate_reply_oldest_undelivered_age_seconds"] > 0


def test_no_replies_still_exports_every_state(tmp_path: Path) -> None:
    gate = Mailgate.open(make_settings(tmp_path))
    try:
        metrics = scrape(gate)
    finally:
        gate.engine.dispose()
    assert metrics['mailgate_reply_delivery{state="dead"}'] == 0
    assert metrics['mailgate_reply_delivery{state="failed"}'] == 0
    assert metrics["mailgate_reply_oldest_undelivered_age_seconds"] == 0
