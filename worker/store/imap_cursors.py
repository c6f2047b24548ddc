"""IMAP cursors and leases: where each mailbox's poller stands, and which replica polls it.

One row per mailbox holds ``(UIDVALIDITY, last UID)`` and a lease (owner, expiry). A poller
claims the lease before each pass and renews it while idle; a replica whose lease has
lapsed loses the mailbox to a standby one. The cursor only moves forward, and only within
the ``UIDVALIDITY`` it was read under, so a late writer can never rewind it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, update
from sqlmodel import col

from worker.clock import utcnow
from worker.store.db import transaction
from worker.store.models import ImapCursor
from worker.store.repository import dialect_insert


@dataclass(frozen=True)
class CursorPosition:
    """The last UID decided; ``reset_from`` is the old UIDVALIDITY when it had changed."""

    last_uid: int
    reset_from: int | None = None


def claim_lease(
    engine: Engine, mailbox: str, uidvalidity: int, owner: str, lease: timedelta
) -> bool:
    """Take or keep the mailbox for ``lease``; False while another owner's lease runs."""
    now = utcnow()
    with transaction(engine) as session:
        session.execute(
            dialect_insert(session, ImapCursor)
            .values(
                mailbox=mailbox,
                uidvalidity=uidvalidity,
                last_uid=0,
                owner=None,
                lease_until=None,
                updated_at=now,
            )
            .on_conflict_do_nothing(index_elements=["mailbox"])
        )
        result: Any = session.execute(
            update(ImapCursor)
            .where(col(ImapCursor.mailbox) == mailbox)
            .where(
                (col(ImapCursor.owner) == owner)
                | col(ImapCursor.owner).is_(None)
                | (col(ImapCursor.lease_until) < now)
            )
            .values(owner=owner, lease_until=now + lease)
        )
        return bool(result.rowcount)


def renew_lease(engine: Engine, mailbox: str, owner: str, lease: timedelta) -> None:
    with transaction(engine) as session:
        session.execute(
            update(ImapCursor)
            .where(col(ImapCursor.mailbox) == mailbox, col(ImapCursor.owner) == owner)
            .values(lease_until=utcnow() + lease)
        )


def read_cursor(engine: Engine, mailbox: str, uidvalidity: int) -> CursorPosition:
    """The cursor under ``uidvalidity``; a changed UIDVALIDITY starts it again from 0."""
    with transaction(engine) as session:
        cursor = session.get(ImapCursor, mailbox)
        assert cursor is not None  # created by claim_lease
        if cursor.uidvalidity == uidvalidity:
            return CursorPosition(int(cursor.last_uid))
        old = int(cursor.uidvalidity)
        cursor.uidvalidity, cursor.last_uid = uidvalidity, 0
        cursor.updated_at = utcnow()
        return CursorPosition(0, reset_from=old)


def save_cursor(engine: Engine, mailbox: str, uidvalidity: int, uid: int, lease: timedelta) -> None:
    """Move the cursor forward to ``uid`` (never back) and extend the lease."""
    now = utcnow()
    with transaction(engine) as session:
        session.execute(
            update(ImapCursor)
            .where(
                col(ImapCursor.mailbox) == mailbox,
                col(ImapCursor.uidvalidity) == uidvalidity,
                col(ImapCursor.last_uid) < uid,
            )
            .values(last_uid=uid, updated_at=now, lease_until=now + lease)
        )
