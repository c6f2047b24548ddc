"""Reads and writes of the decision store, each a small function over a session.

Writes that must be atomic with a decision (raw message, chain head, reply ledger, outbox)
are called from ``record`` inside its one transaction; the helpers here never commit.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, bindparam, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from worker.clock import utcnow
from worker.store.models import ChainHead, DecisionRow, RawMessage, ReplyLedger, Ticket
from worker.store.tickets_view import TicketInfo


def dialect_insert(session: Session, table: Any) -> Any:
    """INSERT with the dialect's ON CONFLICT support (SQLite and PostgreSQL share it)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


class StoreDirectory:
    """The ``Directory`` the rules read, backed by a session."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def ticket(self, ticket_id: str) -> TicketInfo | None:
        row = self.session.get(Ticket, ticket_id)
        if row is None:
            return None
        return TicketInfo(
            id=row.id,
            kind=row.kind,
            status=row.status,
            closed_at=row.closed_at,
            participants=tuple(row.participants),
            domains=tuple(row.domains),
        )

    def decided(self, dedup_key: str) -> int | None:
        return self.session.scalar(
            select(DecisionRow.id).where(col(DecisionRow.dedup_key) == dedup_key)
        )

    def decided_as(self, dedup_key: str) -> tuple[int, str] | None:
        """The id and decision name of the message's earlier decision, if there is one."""
        row = self.session.execute(
            select(DecisionRow.id, DecisionRow.decision).where(
                col(DecisionRow.dedup_key) == dedup_key
            )
        ).first()
        return None if row is None else (int(row[0]), str(row[1]))


def store_raw(session: Session, sha256: str, raw: bytes) -> None:
    """Content-addressed: the same bytes are stored once, whoever delivers them."""
    statement = (
        dialect_insert(session, RawMessage)
        .values(sha256=sha256, size=len(raw), compressed=compress(raw), stored_at=utcnow())
        .on_conflict_do_nothing(index_elements=["sha256"])
    )
    session.execute(statement)


def compress(raw: bytes, chunk: int = 1 << 20) -> bytearray:
    """``zlib.compress(raw, 6)``'s bytes, grown in place in one buffer.

    ``zlib.compress`` collects its output in blocks and joins them into a new object at
    the end: twice the compressed size at once, ~2× a 25 MB attachment's size. Feeding it
    by slices of a memoryview (no copy of the input) into a ``bytearray`` keeps one buffer;
    the drivers bind any buffer as a BLOB/bytea without copying it into a ``bytes``.
    """
    packer = zlib.compressobj(6)
    out = bytearray()
    view = memoryview(raw)
    for start in range(0, len(view), chunk):
        out += packer.compress(view[start : start + chunk])
    out += packer.flush()
    return out


def load_raw(session: Session, sha256: str) -> bytes | None:
    row = session.get(RawMessage, sha256)
    if row is None or row.compressed is None:
        return None
    return zlib.decompress(row.compressed)


def lock_chain_head(session: Session) -> ChainHead:
    statement = select(ChainHead).where(col(ChainHead.id) == 1)
    if session.get_bind().dialect.name == "postgresql":
        # Appends to the chain are serialised across replicas on this one row.
        statement = statement.with_for_update()
    head = session.scalars(statement).one()
    return head


def claim_reply_slot(
    session: Session, sender: str, reason: str, now: datetime, window: timedelta
) -> bool:
    """True when no reply for (sender, reason) went out within ``window``; claims it if so.

    One upsert that only overwrites a stale timestamp: two replicas racing for the same
    slot cannot both win, and the claim commits or rolls back with the decision.
    """
    statement = _CLAIM[session.get_bind().dialect.name == "postgresql"]
    values = {"sender": sender, "reason": reason, "last_at": now, "stale_before": now - window}
    return session.connection().execute(statement, values).first() is not None


def _claim_statement(dialect: Any) -> Any:
    # Built once per dialect: building it per message cost more Python than running it.
    insert = dialect.insert(LEDGER)
    return insert.on_conflict_do_update(
        index_elements=["sender", "reason"],
        set_={"last_at": insert.excluded.last_at},
        where=LEDGER.c.last_at <= bindparam("stale_before"),
    ).returning(text("1"))


LEDGER: Any = ReplyLedger.__table__  # type: ignore[attr-defined]
_CLAIM = {False: _claim_statement(sqlite), True: _claim_statement(postgresql)}


def reply_slot_free(
    session: Session, sender: str, reason: str, now: datetime, window: timedelta
) -> bool:
    row = session.get(ReplyLedger, (sender, reason))
    return row is None or row.last_at <= now - window


def iter_chain(session: Session, batch: int = 1000) -> Iterator[DecisionRow]:
    last = 0
    while True:
        rows = session.scalars(
            select(DecisionRow)
            .where(col(DecisionRow.seq) > last)
            .order_by(col(DecisionRow.seq))
            .limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].seq


def purge_raw(engine: Engine, older_than: datetime) -> int:
    """Drop the bytes of raw messages stored before ``older_than``; keep their digests.

    Decision rows only reference ``raw_sha256``, so the audit chain stays verifiable.
    """
    from sqlalchemy import update

    from worker.store.db import transaction

    with transaction(engine) as session:
        result: Any = session.execute(
            update(RawMessage)
            .where(col(RawMessage.stored_at) < older_than, col(RawMessage.compressed).is_not(None))
            .values(compressed=None, purged_at=utcnow())
        )
        return int(result.rowcount or 0)
