"""One sync round: the tickets the helpdesk changed since the cursor, into the directory.

The round reads the cursor, asks the connector for what changed, writes those tickets in one
transaction (kind from the queue, status, closed time, requestors and Cc as participants,
``source`` the connector's name; domains an operator gave a ticket are kept) and only then
moves the cursor, so a crash repeats a round rather than skipping one. A merged ticket takes
its survivor's facts and follows it in later rounds. With a lease, replicas take turns.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from worker.clock import utcnow
from worker.helpdesk import state
from worker.helpdesk.config import kind_of
from worker.helpdesk.connector import Connector, HelpdeskUnavailable, RemoteTicket
from worker.store.db import transaction, writer_turn
from worker.store.models import Ticket
from worker.ticket_ids import normalize_ticket_id

log = structlog.get_logger("mailgate.helpdesk")
OWNER = f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class SyncReport:
    tickets: int
    cursor: str
    full: bool


def sync_round(
    engine: Engine,
    connector: Connector,
    kinds: dict[str, str],
    *,
    full: bool = False,
    lease: timedelta | None = None,
) -> SyncReport | None:
    """One round; None when another replica holds the lease. Raises HelpdeskUnavailable."""
    name = connector.name
    if lease is not None and not state.take_lease(engine, name, OWNER, lease):
        return None
    row = state.read(engine, name)
    cursor = None if full or row is None else row.cursor
    try:
        changes = connector.changes(cursor)
    except HelpdeskUnavailable as exc:
        state.count_error(engine, name, "sync", str(exc))
        log.warning("helpdesk_sync_failed", helpdesk=name, error=str(exc))
        raise
    written = apply_tickets(engine, changes.tickets, kinds, name)
    state.save_cursor(engine, name, changes.cursor, utcnow())
    # A quiet round is a debug line: with the default interval that is 1440 lines a day.
    level = "info" if written or cursor is None else "debug"
    getattr(log, level)("helpdesk_synced", helpdesk=name, tickets=written, full=cursor is None)
    return SyncReport(written, changes.cursor, cursor is None)


def apply_tickets(
    engine: Engine, tickets: list[RemoteTicket], kinds: dict[str, str], source: str
) -> int:
    """Write the tickets (survivors first, so merged ones can copy them) in one transaction."""
    by_id = {normalize_ticket_id(t.id): t for t in tickets}
    ordered = sorted(by_id.items(), key=lambda item: item[1].merged_into is not None)
    now = utcnow()
    with writer_turn(engine), transaction(engine) as session:
        for ticket_id, ticket in ordered:
            values = _values(session, ticket, kinds, source)
            if values is None:
                continue
            _upsert(session, ticket_id, {**values, "updated_at": now})
            if ticket.merged_into is None:
                _follow_survivor(session, ticket_id, values, now)
    return len(by_id)


def _values(
    session: Session, ticket: RemoteTicket, kinds: dict[str, str], source: str
) -> dict[str, Any] | None:
    values: dict[str, Any] = {
        "kind": kind_of(kinds, ticket.queue),
        "status": ticket.status,
        "closed_at": ticket.closed_at if ticket.status == "closed" else None,
        "participants": list(ticket.participants),
        "source": source,
        "merged_into": None,
    }
    if ticket.merged_into is None:
        return values
    survivor = session.get(Ticket, normalize_ticket_id(ticket.merged_into))
    if survivor is None:
        return values  # the survivor arrives in a later round and updates this one
    merged = {k: getattr(survivor, k) for k in ("kind", "status", "closed_at")}
    people = dict.fromkeys([*survivor.participants, *ticket.participants])
    return {**values, **merged, "participants": list(people), "merged_into": survivor.id}


def _upsert(session: Session, ticket_id: str, values: dict[str, Any]) -> None:
    row = session.get(Ticket, ticket_id)
    if row is None:
        session.add(Ticket(id=ticket_id, domains=[], **values))
        return
    for key, value in values.items():
        setattr(row, key, value)


def _follow_survivor(session: Session, survivor: str, values: dict[str, Any], now: Any) -> None:
    """Tickets merged into ``survivor`` earlier take its new status and closed time."""
    session.flush()
    merged = session.scalars(select(Ticket).where(col(Ticket.merged_into) == survivor)).all()
    for row in merged:
        row.status, row.closed_at, row.kind = values["status"], values["closed_at"], values["kind"]
        row.updated_at = now
