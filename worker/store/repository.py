"""Reads and writes of the decision store, each a small function over a session.

Writes that must be atomic with a decision (raw message, chain head, reply ledger, outbox)
are called from ``record`` inside its one transaction; the helpers here never commit.
"""

from __future__ import annotations

import tempfile
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from sqlalchemy import Engine, bindparam, func, literal_column, text
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
        return TicketInfo.from_row(row)

    def decided_as(self, dedup_key: str) -> tuple[int, str] | None:
        """The id and decision name of the message's earlier decision, if there is one."""
        row = self.session.execute(
            select(DecisionRow.id, DecisionRow.decision).where(
                col(DecisionRow.dedup_key) == dedup_key
            )
        ).first()
        return None if row is None else (int(row[0]), str(row[1]))


# Above this size a raw message's compressed bytes go to SQLite through a spool file and
# blob I/O rather than as a bound parameter (see ``_store_large_raw_sqlite``).
SPOOL_ABOVE = 1 << 20
CHUNK = 1 << 20


def store_raw(session: Session, sha256: str, raw: bytes | bytearray) -> None:
    """Content-addressed: the same bytes are stored once, whoever delivers them."""
    if len(raw) > SPOOL_ABOVE and session.get_bind().dialect.name == "sqlite":
        _store_large_raw_sqlite(session, sha256, raw)
        return
    statement = STORE_RAW[session.get_bind().dialect.name == "postgresql"]
    session.connection().execute(statement, _raw_row(sha256, raw))


def raw_values(pending: Any) -> dict[str, Any]:
    """A pending decision's raw message as a ``raw_message`` row (below ``SPOOL_ABOVE``)."""
    return _raw_row(pending.decision.raw_sha256, pending.raw)


def _raw_row(sha256: str, raw: bytes | bytearray) -> dict[str, Any]:
    return {"sha256": sha256, "size": len(raw), "compressed": compress(raw), "stored_at": utcnow()}


def _store_raw_statement(dialect: Any) -> Any:
    # Built once per dialect, like the recorder's: per message, building the INSERT cost
    # more Python than running it (py-spy: store_raw was 15 % of the committer thread).
    return dialect.insert(RAW).on_conflict_do_nothing(index_elements=["sha256"])


RAW: Any = RawMessage.__table__  # type: ignore[attr-defined]
STORE_RAW = {False: _store_raw_statement(sqlite), True: _store_raw_statement(postgresql)}


def _store_large_raw_sqlite(session: Session, sha256: str, raw: bytes | bytearray) -> None:
    """The row with a ``zeroblob`` of the compressed length, then the bytes by blob I/O.

    SQLite builds a row's whole record in memory, and a BLOB before other non-NULL columns
    (``compressed`` comes before ``stored_at``) is in it twice: bound (or a zeroblob
    expanded) and in the record. With the raw message and its compressed buffer beside
    them, a 25 MB message peaked at 3.4× its size. Compressed into an unlinked spool file
    next to the database (the same privacy as the database itself) instead, only its
    length is in memory when the record is built; the bytes follow chunk by chunk.
    """
    database = session.connection().engine.url.database
    directory = Path(database).parent if database and database != ":memory:" else None
    with tempfile.TemporaryFile(dir=directory) as spool:
        for piece in compressed_pieces(raw):
            spool.write(piece)
        length = spool.tell()
        statement = (
            dialect_insert(session, RawMessage)
            .values(sha256=sha256, size=len(raw), compressed=func.zeroblob(length),
                    stored_at=utcnow())
            .on_conflict_do_nothing(index_elements=["sha256"])
            .returning(literal_column("rowid"))
        )  # fmt: skip
        rowid = session.execute(statement).scalar()
        if rowid is None:  # the same bytes are stored already
            return
        spool.seek(0)
        driver = session.connection().connection.driver_connection
        assert driver is not None  # a live connection: the INSERT above just ran on it
        with driver.blobopen(RawMessage.__tablename__, "compressed", rowid) as blob:
            while piece := spool.read(CHUNK):
                blob.write(piece)


def compress(raw: bytes | bytearray) -> bytearray:
    """``zlib.compress(raw, 6)``'s bytes, grown in place in one buffer.

    ``zlib.compress`` collects its output in blocks and joins them into a new object at
    the end: twice the compressed size at once, ~2× a 25 MB attachment's size. Growing
    one ``bytearray`` keeps one buffer; the drivers bind any buffer as a BLOB/bytea
    without copying it into a ``bytes``.
    """
    out = bytearray()
    for piece in compressed_pieces(raw):
        out += piece
    return out


def compressed_pieces(raw: bytes | bytearray, chunk: int = CHUNK) -> Iterator[bytes]:
    """``zlib.compress(raw, 6)``'s bytes in pieces, fed by memoryview slices (no copy)."""
    packer = zlib.compressobj(6)
    view = memoryview(raw)
    for start in range(0, len(view), chunk):
        yield packer.compress(view[start : start + chunk])
    yield packer.flush()


def load_raw(session: Session, sha256: str) -> bytes | None:
    row = session.get(RawMessage, sha256)
    if row is None or row.compressed is None:
        return None
    return zlib.decompress(row.compressed)


def lock_chain_head(session: Session) -> ChainPosition:
    """The chain head's (seq, digest), locked: on PostgreSQL appends are serialised across
    replicas on this one row (SQLite's BEGIN IMMEDIATE already holds the whole database).
    A Core statement built once: the ORM select cost ~0.4 ms per batch."""
    postgresql = session.get_bind().dialect.name == "postgresql"
    row = session.connection().execute(_HEAD_FOR_UPDATE if postgresql else _HEAD).one()
    return ChainPosition(row.seq, row.digest)


class ChainPosition(NamedTuple):
    seq: int
    digest: str


_HEAD_TABLE: Any = ChainHead.__table__  # type: ignore[attr-defined]
_HEAD = select(_HEAD_TABLE.c.seq, _HEAD_TABLE.c.digest).where(_HEAD_TABLE.c.id == 1)
_HEAD_FOR_UPDATE = _HEAD.with_for_update()


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
_SLOT_TAKEN_AT = select(LEDGER.c.last_at).where(
    LEDGER.c.sender == bindparam("sender"), LEDGER.c.reason == bindparam("reason")
)


def slot_taken_at(session: Session, sender: str, reason: str) -> datetime | None:
    """When the (sender, reason) slot's reply went out (a claim just lost reads it)."""
    found = session.connection().execute(_SLOT_TAKEN_AT, {"sender": sender, "reason": reason})
    last_at = found.scalar_one_or_none()
    if last_at is None:
        return None
    return last_at if last_at.tzinfo else last_at.replace(tzinfo=UTC)


def reply_slot_free(
    session: Session, sender: str, reason: str, now: datetime, window: timedelta
) -> bool:
    taken_at = slot_taken_at(session, sender, reason)
    return taken_at is None or taken_at <= now - window


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
