"""Retention drops old raw messages and keeps the decision chain verifiable."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from helpers import (
    RunningServer,
    add_standard_tickets,
    envelope,
    fixture_bytes,
    make_settings,
    with_headers,
)
from sqlalchemy import update
from sqlmodel import Session, col

from worker.audit import verify_chain
from worker.clock import utcnow
from worker.pipeline import Mailgate
from worker.retention import retention_loop
from worker.store.models import ChainHead, RawMessage
from worker.store.repository import iter_chain, load_raw, purge_raw


def test_purge_keeps_digests_and_chain(gate: Mailgate) -> None:
    old = gate.ingest(fixture_bytes("new_ticket.eml"), envelope("alice@customer.example"))
    recent_raw = with_headers(fixture_bytes("dsn.eml"), Message_ID="<recent@x.example>")
    recent = gate.ingest(recent_raw, envelope(""))
    with Session(gate.engine) as session:
        session.execute(
            update(RawMessage)
            .where(col(RawMessage.sha256) == old.raw_sha256)
            .values(stored_at=utcnow() - timedelta(days=400))
        )
        session.commit()
    assert purge_raw(gate.engine, utcnow() - timedelta(days=365)) == 1
    assert purge_raw(gate.engine, utcnow() - timedelta(days=365)) == 0
    with Session(gate.engine) as session:
        assert load_raw(session, old.raw_sha256) is None
        assert load_raw(session, recent.raw_sha256) == recent_raw
        row = session.get(RawMessage, old.raw_sha256)
        assert row is not None and row.purged_at is not None and row.size > 0
        head = session.get(ChainHead, 1)
        assert head is not None
        assert verify_chain(iter_chain(session), head.seq, head.digest).ok
    again = gate.ingest(fixture_bytes("new_ticket.eml"), envelope("alice@customer.example"))
    assert again.decision == "duplicate", "a purged message is still known as decided"


def _age(gate: Mailgate, raw_sha256: str, days: int) -> None:
    with Session(gate.engine) as session:
        session.execute(
            update(RawMessage)
            .where(col(RawMessage.sha256) == raw_sha256)
            .values(stored_at=utcnow() - timedelta(days=days))
        )
        session.commit()


def _purged(gate: Mailgate, raw_sha256: str) -> bool:
    with Session(gate.engine) as session:
        return load_raw(session, raw_sha256) is None


def test_retention_loop_purges_once_even_when_asked_to_stop(gate: Mailgate) -> None:
    """A short-lived process still applies retention once before it stops."""
    old = gate.ingest(fixture_bytes("new_ticket.eml"), envelope("alice@customer.example"))
    _age(gate, old.raw_sha256, 400)

    async def run_once() -> None:
        stopping = asyncio.Event()
        stopping.set()
        await retention_loop(gate.engine, 365, stopping)

    asyncio.run(run_once())
    assert _purged(gate, old.raw_sha256)


def test_serve_runs_retention_as_its_own_job(tmp_path: Path, database_url: str) -> None:
    """serve purges on start-up as a job of its own; an outbox round purges nothing."""
    gate = Mailgate.open(
        make_settings(tmp_path, database_url, smtp_listen="127.0.0.1:0", retention_days=365)
    )
    add_standard_tickets(gate)
    first = gate.ingest(fixture_bytes("new_ticket.eml"), envelope("alice@customer.example"))
    _age(gate, first.raw_sha256, 400)
    running = RunningServer(gate)
    running.stop()  # run() returns only after its jobs have finished their first round
    assert _purged(gate, first.raw_sha256)
    later_raw = with_headers(fixture_bytes("dsn.eml"), Message_ID="<later@x.example>")
    later = gate.ingest(later_raw, envelope(""))
    _age(gate, later.raw_sha256, 400)
    running.server.outbox_round()
    assert not _purged(gate, later.raw_sha256), "the outbox round is not the retention job"
    gate.engine.dispose()
