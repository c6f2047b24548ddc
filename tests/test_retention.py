"""Retention drops old raw messages and keeps the decision chain verifiable."""

from __future__ import annotations

from datetime import timedelta

from helpers import envelope, fixture_bytes, with_headers
from sqlalchemy import update
from sqlmodel import Session, col

from worker.audit import verify_chain
from worker.clock import utcnow
from worker.pipeline import Mailgate
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
