"""The database engine: SQLite tuned for durable single-writer use, or PostgreSQL.

SQLite runs in WAL mode with ``synchronous=FULL`` (a commit survives power loss, which is what
lets a ``250`` mean "stored"), a busy timeout, and ``BEGIN IMMEDIATE`` so that a writer takes
the lock up front instead of failing with "database is locked" half-way through. The schema
is brought to the newest alembic revision on open; concurrent openers serialise on the
migration lock that alembic takes inside its transaction.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy.exc
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlmodel import Session

from worker.errors import TransientError
from worker.private import create_private_file, held_exclusively, private_directory

MIGRATIONS = Path(__file__).parent / "migrations"
# A failed statement's exception text would otherwise quote its parameters: raw message
# bytes, addresses, the decision. The text ends up in logs.
HIDE_PARAMETERS = True
TRANSIENT_DB_ERRORS = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any, busy_ms: int = 15000) -> None:
    # Autocommit at the driver level; SQLAlchemy's "begin" hook below issues BEGIN IMMEDIATE.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str, busy_timeout: float = 15.0) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            # Created 0600 before SQLite opens it: its WAL and SHM inherit the mode.
            private_directory(Path(parsed.database).parent)
            create_private_file(Path(parsed.database))
        # A pool as large as the decision threads: a new SQLite connection costs its pragmas.
        engine = create_engine(
            url,
            connect_args={"timeout": busy_timeout},
            pool_size=20,
            max_overflow=10,
            hide_parameters=HIDE_PARAMETERS,
        )
        event.listen(
            engine,
            "connect",
            lambda conn, record: _sqlite_pragmas(conn, record, int(busy_timeout * 1000)),
        )

        @event.listens_for(engine, "begin")
        def _begin(conn: Any) -> None:
            # Writers lock up front; readers (engines marked mailgate_read) read a snapshot.
            read_only = conn.get_execution_options().get("mailgate_read", False)
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    return create_engine(
        url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=20,
        connect_args={"connect_timeout": 5},
        hide_parameters=HIDE_PARAMETERS,
    )


_REVISION = re.compile(r'^(down_revision|revision) = (?:"([^"]+)"|None)$', re.MULTILINE)


def head_revision() -> str | None:
    """The newest migration's id, read from the files without importing alembic (whose
    import alone costs a one-message ``ingest`` about a tenth of its time)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (MIGRATIONS / "versions").glob("*.py"):
        for field, value in _REVISION.findall(script.read_text()):
            (revisions if field == "revision" else parents).add(value)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None  # branches: let alembic decide


def schema_current(engine: Engine) -> bool:
    """Whether the database already stands at the newest revision: one SELECT."""
    head = head_revision()
    if head is None:
        return False
    try:
        with engine.connect() as connection:
            current = connection.exec_driver_sql("SELECT version_num FROM alembic_version")
            return [row[0] for row in current] == [head]
    except sqlalchemy.exc.DBAPIError:  # no alembic_version table yet: a new database
        return False


def migrate(engine: Engine) -> None:
    """Upgrade the schema to the newest revision (a no-op when already there)."""
    if schema_current(engine):
        return
    from alembic import command
    from alembic.config import Config
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    script = ScriptDirectory.from_config(config)
    head = script.get_current_head()
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
        if current == head:
            return
        from worker.store.upgrade import refuse_unknown

        refuse_unknown(current, {rev.revision for rev in script.walk_revisions()}, head)
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        connection.commit()


def migrate_command(engine: Engine) -> tuple[str | None, str | None]:
    """``mailgate migrate``: the revision before and after bringing the schema to head."""
    from worker.store.upgrade import current_revision

    before = current_revision(engine)
    migrate(engine)
    return before, current_revision(engine)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """A session whose work commits together or not at all; storage errors become transient."""
    try:
        with Session(engine, expire_on_commit=False) as session, session.begin():
            yield session
    except TRANSIENT_DB_ERRORS as exc:
        raise TransientError(f"database unavailable: {type(exc.orig).__name__}") from exc


@contextmanager
def writer_turn(engine: Engine) -> Iterator[None]:
    """Take turns between processes before a SQLite write transaction.

    SQLite's own busy handler polls with sleeps of up to 100 ms, so two worker processes
    contending for the write lock lose most of their time asleep. A blocking ``flock`` on
    a file next to the database wakes the next writer the moment the lock is released.
    PostgreSQL needs no such thing (row locks queue properly), nor does ``:memory:``.
    """
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:":
        yield
        return
    with held_exclusively(Path(f"{database}.writer-lock")):
        yield
