"""The helpdesk's row in the store: the sync cursor, the lease, the error counts.

One row per connector in ``helpdesk_state``. The lease makes the periodic sync run in one
replica at a time: a round first takes the row for ``lease`` (taken when free, expired or
already ours), so replicas can all run the loop and only one talks to the helpdesk. The
error counts and the time of the last good round are what ``/metrics`` exports, the same
from every replica.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import Engine, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col

from worker.clock import utcnow
from worker.store.db import transaction, writer_turn
from worker.store.models import HelpdeskState


def ensure_row(engine: Engine, name: str) -> None:
    try:
        with writer_turn(engine), transaction(engine) as session:
            if session.get(HelpdeskState, name) is None:
                session.add(HelpdeskState(name=name))
    except IntegrityError:
        pass  # another replica inserted it first


def take_lease(engine: Engine, name: str, owner: str, lease: timedelta) -> bool:
    """Whether this process holds the sync lease now (renewed when it already did)."""
    ensure_row(engine, name)
    now = utcnow()
    with writer_turn(engine), transaction(engine) as session:
        result = session.execute(
            update(HelpdeskState)
            .where(
                col(HelpdeskState.name) == name,
                or_(
                    col(HelpdeskState.owner).is_(None),
                    col(HelpdeskState.owner) == owner,
                    col(HelpdeskState.lease_until) < now,
                ),
            )
            .values(owner=owner, lease_until=now + lease)
        )
        return bool(getattr(result, "rowcount", 0))


def read(engine: Engine, name: str) -> HelpdeskState | None:
    with transaction(engine) as session:
        row = session.get(HelpdeskState, name)
        if row is not None:
            session.expunge(row)
        return row


def save_cursor(engine: Engine, name: str, cursor: str, at: datetime) -> None:
    ensure_row(engine, name)
    with writer_turn(engine), transaction(engine) as session:
        row = session.get(HelpdeskState, name)
        assert row is not None
        row.cursor, row.last_sync_at, row.last_error = cursor, at, None


def count_error(engine: Engine, name: str, what: Literal["sync", "delivery"], error: str) -> None:
    ensure_row(engine, name)
    column = HelpdeskState.sync_errors if what == "sync" else HelpdeskState.delivery_errors
    with writer_turn(engine), transaction(engine) as session:
        session.execute(
            update(HelpdeskState)
            .where(col(HelpdeskState.name) == name)
            .values({column: column + 1, "last_error": f"{what}: {error}"[:500]})
        )


def clear_error(engine: Engine, name: str) -> None:
    with writer_turn(engine), transaction(engine) as session:
        session.execute(
            update(HelpdeskState)
            .where(col(HelpdeskState.name) == name, col(HelpdeskState.last_error).is_not(None))
            .values(last_error=None)
        )
