"""The ticket directory kept in memory, checked against the store's version counter.

A decision that names a ticket reads one row, ``ticket_version``, which triggers on the
``ticket`` table bump in the same transaction as any change (``mailgate tickets``, the web
form, another replica, hand-written SQL). A cached ticket is used only if it was read under
the version current now; otherwise it is read again. Each entry carries the version read
*before* the ticket itself, so a ticket changed between the two reads is at worst read too
new, never kept too old. The reads go through one long-lived connection per thread, with
Core statements, instead of a session and a pool checkout per decision.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, select
from sqlmodel import SQLModel

from worker.errors import TransientError
from worker.store.db import TRANSIENT_DB_ERRORS
from worker.store.tickets_view import TicketInfo

TICKET = SQLModel.metadata.tables["ticket"]
MAX_ENTRIES = 50_000  # past this the cache starts over rather than grow without bound
_VERSION_SQL = "SELECT version FROM ticket_version WHERE id = 1"
_READ_TICKET = select(
    TICKET.c.id,
    TICKET.c.kind,
    TICKET.c.status,
    TICKET.c.closed_at,
    TICKET.c.participants,
    TICKET.c.domains,
).where(TICKET.c.id == bindparam("ticket_id"))


class CachedDirectory:
    """Where the ticket reference finds its ticket when the decision is about to be
    recorded: the cache. Whether the message was decided before is not read here but left
    to the write transaction's unique ``dedup_key`` (``worker.policy.earlier``)."""

    def __init__(self, cache: TicketCache) -> None:
        self.cache = cache

    def ticket(self, ticket_id: str) -> TicketInfo | None:
        return self.cache.ticket(ticket_id)


class TicketCache:
    """Tickets by id, each with the ``ticket_version`` it was read under; shared by the
    threads of one process (each entry is replaced whole, so no lock is needed)."""

    def __init__(self, engine: Engine) -> None:
        # Plain BEGIN on SQLite: a reader never takes the write lock.
        self.engine = engine.execution_options(mailgate_read=True)
        self._entries: dict[str, tuple[int, TicketInfo | None]] = {}
        self._local = threading.local()
        self._postgres = engine.dialect.name == "postgresql"
        # SQLite runs in driver autocommit (see db.py), so the SELECT needs no transaction.
        self._errors: tuple[type[Exception], ...] = (
            *TRANSIENT_DB_ERRORS,
            engine.dialect.loaded_dbapi.Error,
        )
        self.hits = 0
        self.reads = 0

    def ticket(self, ticket_id: str) -> TicketInfo | None:
        """The ticket as the store holds it now (or held it at the last change)."""
        try:
            connection = self._connection()
            version = self._version(connection)
            entry = self._entries.get(ticket_id)
            if version is not None and entry is not None and entry[0] == version:
                self.hits += 1
                return entry[1]
            with connection.begin():
                info = _read_ticket(connection, ticket_id)
        except self._errors as exc:
            self._drop_connection()
            raise TransientError(f"database unavailable: {type(exc).__name__}") from exc
        self.reads += 1
        if version is not None:  # no counter row (an emptied table): never cache
            if len(self._entries) >= MAX_ENTRIES:
                self._entries = {}
            self._entries[ticket_id] = (version, info)
        return info

    def _version(self, connection: Connection) -> int | None:
        """The counter, by one statement on the driver's connection: the SQLAlchemy
        transaction around it (BEGIN, COMMIT, events) cost ten times the read itself."""
        dbapi = connection.connection.dbapi_connection
        assert dbapi is not None
        cursor = dbapi.cursor()
        try:
            cursor.execute(_VERSION_SQL)
            row = cursor.fetchone()
        finally:
            cursor.close()
        if self._postgres:
            dbapi.rollback()  # end the transaction psycopg opened for the SELECT
        return None if row is None else int(row[0])

    def _connection(self) -> Connection:
        connection: Connection | None = getattr(self._local, "connection", None)
        if connection is None or connection.closed or connection.invalidated:
            connection = self.engine.connect()
            self._local.connection = connection
        return connection

    def _drop_connection(self) -> None:
        connection: Connection | None = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            with contextlib.suppress(Exception):  # already broken: the pool forgets it
                connection.invalidate()


def _read_ticket(connection: Connection, ticket_id: str) -> TicketInfo | None:
    row: Any = connection.execute(_READ_TICKET, {"ticket_id": ticket_id}).first()
    if row is None:
        return None
    return TicketInfo.from_row(row)
