"""The chain in the database: reading it in order, verifying, exporting, appending records.

Decisions are appended by ``worker.recorder``; every other chain record (an anchor, an
erasure) is appended here by ``append_event``, under the same chain-head row lock, so that
both kinds share one gap-free ``seq`` across replicas.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any, TextIO

from sqlalchemy import Engine, update
from sqlmodel import Session, col, select

from worker.audit import (
    AnchorCheck,
    VerifyResult,
    event_digest,
    export_record,
    merged,
    verify_chain,
)
from worker.store.models import ChainEvent, ChainHead
from worker.store.repository import iter_chain, lock_chain_head


def chain_events(session: Session, after: int = 0) -> list[ChainEvent]:
    """Every non-decision record after ``after``, in order (there are few of them)."""
    statement = select(ChainEvent).where(col(ChainEvent.seq) > after)
    return list(session.scalars(statement.order_by(col(ChainEvent.seq))).all())


def iter_records(session: Session, events: list[ChainEvent] | None = None) -> Iterator[Any]:
    """Decisions and chain events in one ``seq`` order."""
    return merged(iter_chain(session), events if events is not None else chain_events(session))


def read_head(session: Session) -> ChainHead:
    head = session.get(ChainHead, 1)
    assert head is not None  # written by the first migration
    return head


def verify_database(
    engine: Engine, anchor_check: AnchorCheck | None = None
) -> tuple[VerifyResult, str]:
    """Verify the stored chain against its head; the result and the head digest."""
    with Session(engine) as session:
        head = read_head(session)
        events = chain_events(session)
        result = verify_chain(
            iter_records(session, events), head.seq, head.digest, anchor_check, events
        )
        return result, head.digest


def export_chain(engine: Engine, handle: TextIO) -> tuple[int, str]:
    """Write the chain as JSON lines, then the head; how many records, and the head digest."""
    count = 0
    # One read transaction: the records and the head are one consistent snapshot.
    with Session(engine) as session:
        for record in iter_records(session):
            handle.write(json.dumps(export_record(record), ensure_ascii=False) + "\n")
            count += 1
        head = read_head(session)
        handle.write(json.dumps({"head": {"seq": head.seq, "digest": head.digest}}) + "\n")
    return count, head.digest


def append_event(session: Session, kind: str, body: dict[str, Any], now: datetime) -> ChainEvent:
    """Append one chain record inside the caller's write transaction (which commits it)."""
    head = lock_chain_head(session)
    fields: dict[str, Any] = {"seq": head.seq + 1, "kind": kind, "at": now, "body": body}
    digest = event_digest(head.digest, fields)
    event = ChainEvent(**fields, prev_digest=head.digest, digest=digest)
    session.add(event)
    session.execute(
        update(ChainHead).where(col(ChainHead.id) == 1).values(seq=event.seq, digest=digest)
    )
    session.flush()
    return event
