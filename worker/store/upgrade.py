"""Schema upgrades as an operator sees them: ``mailgate migrate`` and a too-new database.

Every command migrates the database on open (``worker.store.db.migrate``); ``mailgate
migrate`` does only that, saying from which revision to which, so that an upgrade can be
done, and its result read, before the service starts again. A database whose revision
this release does not know was written by a newer release (a rollback without restoring
the backup): that is one clear line, never an alembic traceback, because migrating
"down" by guesswork could lose the newer release's data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy.exc

from worker.errors import ConfigError

if TYPE_CHECKING:
    from sqlalchemy import Engine


def current_revision(engine: Engine) -> str | None:
    """The revision the database stands at; None for a database never migrated."""
    try:
        with engine.connect() as connection:
            rows = connection.exec_driver_sql("SELECT version_num FROM alembic_version")
            return next((str(row[0]) for row in rows), None)
    except sqlalchemy.exc.DBAPIError:  # no alembic_version table: a new database
        return None


def refuse_unknown(current: str | None, known: set[str], head: str | None) -> None:
    """A revision this release does not have is a newer release's: say what to do."""
    if current is not None and current not in known:
        raise ConfigError(
            f"database schema {current} is newer than this release knows (newest {head}): "
            "restore the backup taken before the upgrade, or install the newer release"
        )
