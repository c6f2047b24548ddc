"""The outbox: replies committed with their decision, then handed on.

Without ``MAILGATE_RELAY_URL`` each queued mail row is written to ``<data dir>/outbox/`` as an
``.eml`` file right after the decision commits, by whichever process decided it, before the
client's answer. The file name is the row id, written to a temporary name and renamed, so
a crash between writing and marking the row rewrites the same file instead of creating a
second reply.

Writing the files holds no database lock: the rows are read, their files written and
fsynced, and only then marked ``spooled`` in a short write transaction. (Written inside
the write transaction, as before, every commit of every worker waited behind a file's and
the directory's fsync.) Two spoolers of one directory never write the same row: the whole
round is their turn on the directory's lock (``outbox.lock`` beside it), so the second
reads only after the first has marked its rows, and a spooler that dies mid-round lets go
of the lock with its life, leaving its rows queued for the next round to write again.
No lease to expire.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, update

from worker.clock import utcnow
from worker.decision import OutboxKind, OutboxStatus
from worker.private import held_exclusively, open_private, private_directory
from worker.store.db import transaction, writer_turn
from worker.store.models import OutboxRow

MAIL_KINDS = (OutboxKind.AUTO_REPLY, OutboxKind.FORWARD_MAIL)
OUTBOX: Any = OutboxRow.__table__  # type: ignore[attr-defined]


def spool_file(directory: Path, row_id: int) -> Path:
    return directory / f"{row_id:010d}.eml"


def spool_pending(engine: Engine, directory: Path, ids: list[int] | None = None) -> int:
    """Write queued rows (all, or just ``ids``) to the spool; returns how many were written."""
    private_directory(directory)
    # The directory's turn, held for a whole round (read, write, mark); the lock file
    # lies beside it, the spool holds mail only.
    with held_exclusively(directory.with_name(f"{directory.name}.lock")):
        rows = _queued(engine, ids)
        for row in rows:
            _write(directory, row)
        if not rows:
            return 0
        # The renames are durable only once the directory is: before the rows say
        # "spooled", or a crash could leave a committed "spooled" with no file.
        _fsync_directory(directory)
        _mark_spooled(engine, [row.id for row in rows])
    return len(rows)


def _queued(engine: Engine, ids: list[int] | None) -> list[Any]:
    statement = select(OUTBOX.c.id, OUTBOX.c.mail_from, OUTBOX.c.rcpt_to, OUTBOX.c.body).where(
        OUTBOX.c.status == str(OutboxStatus.QUEUED), OUTBOX.c.kind.in_([str(k) for k in MAIL_KINDS])
    )
    if ids is not None:
        statement = statement.where(OUTBOX.c.id.in_(ids))
    with engine.execution_options(mailgate_read=True).connect() as connection:
        return list(connection.execute(statement.order_by(OUTBOX.c.id)))


def _write(directory: Path, row: Any) -> None:
    target = spool_file(directory, row.id)
    temporary = target.with_suffix(".tmp")
    envelope = f"X-Mailgate-Envelope-From: <{row.mail_from}>\r\n"
    envelope += f"X-Mailgate-Envelope-To: <{row.rcpt_to}>\r\n"
    with os.fdopen(open_private(temporary), "wb") as handle:
        handle.write(envelope.encode() + row.body)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, target)


def _mark_spooled(engine: Engine, ids: list[int]) -> None:
    """Only rows still queued: one erased or retired meanwhile stays as it now is."""
    statement = (
        update(OUTBOX)
        .where(OUTBOX.c.id.in_(ids), OUTBOX.c.status == str(OutboxStatus.QUEUED))
        .values(status=str(OutboxStatus.SPOOLED), done_at=utcnow(), attempts=OUTBOX.c.attempts + 1)
    )
    # Its turn among the SQLite writers like the recorder's: SQLite's own busy handler
    # would sleep up to 100 ms at a time while the committers hold the lock.
    with writer_turn(engine), transaction(engine) as session:
        session.connection().execute(statement)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
