"""The outbox: replies committed with their decision, then handed on.

Without ``MAILGATE_RELAY_URL`` each queued mail row is written to ``<data dir>/outbox/`` as an
``.eml`` file right after the decision commits, by whichever command decided it. The file
name is the row id, written to a temporary name and renamed, so a crash between writing and
marking the row rewrites the same file instead of creating a second reply.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import col, select

from worker.clock import utcnow
from worker.decision import OutboxKind, OutboxStatus
from worker.private import open_private, private_directory
from worker.store.db import transaction, writer_turn
from worker.store.models import OutboxRow

MAIL_KINDS = (OutboxKind.AUTO_REPLY, OutboxKind.FORWARD_MAIL)


def spool_file(directory: Path, row_id: int) -> Path:
    return directory / f"{row_id:010d}.eml"


def spool_pending(engine: Engine, directory: Path, ids: list[int] | None = None) -> int:
    """Write queued rows (all, or just ``ids``) to the spool; returns how many were written."""
    private_directory(directory)
    written = 0
    # Its turn among the SQLite writers like the recorder's: SQLite's own busy handler
    # would sleep up to 100 ms at a time while the committers hold the lock (the DATA→250
    # of a message with a reply waited up to seconds for it under load).
    with writer_turn(engine), transaction(engine) as session:
        statement = select(OutboxRow).where(
            col(OutboxRow.status) == OutboxStatus.QUEUED, col(OutboxRow.kind).in_(MAIL_KINDS)
        )
        if ids is not None:
            statement = statement.where(col(OutboxRow.id).in_(ids))
        rows = session.scalars(statement.order_by(col(OutboxRow.id))).all()
        for row in rows:
            assert row.id is not None
            target = spool_file(directory, row.id)
            temporary = target.with_suffix(".tmp")
            envelope = f"X-Mailgate-Envelope-From: <{row.mail_from}>\r\n"
            envelope += f"X-Mailgate-Envelope-To: <{row.rcpt_to}>\r\n"
            with os.fdopen(open_private(temporary), "wb") as handle:
                handle.write(envelope.encode() + row.body)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
            row.status = OutboxStatus.SPOOLED
            row.done_at = utcnow()
            row.attempts += 1
            written += 1
        if written:
            # The renames are durable only once the directory is: before the rows say
            # "spooled", or a crash could leave a committed "spooled" with no file.
            _fsync_directory(directory)
    return written


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
