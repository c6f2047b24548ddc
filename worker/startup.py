"""What every ``mailgate`` command does first: read the settings once, then open the gate.

Both raise only mailgate's own errors (``ConfigError``, ``TransientError``), so that the
command line's exit-code table (``worker.exits``) decides what each failure means.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from worker.errors import TransientError

if TYPE_CHECKING:  # imported when used: `mailgate --help` needs neither pydantic nor a store
    from sqlalchemy import Engine

    from worker.pipeline import Mailgate
    from worker.settings import Settings


def read_settings(config_file: Path | None) -> Settings:
    """The settings (environment over ``--config`` file); logging set up from them."""
    from worker.logs import configure_logging
    from worker.settings import load_settings

    settings = load_settings(config_file)
    configure_logging(settings.log_level)
    return settings


def open_gate(settings: Settings) -> Mailgate:
    """The pipeline over the configured database and policies."""
    from worker.pipeline import Mailgate

    try:
        return Mailgate.open(settings)
    except OSError as exc:  # the data directory cannot be created or written
        raise TransientError(f"data directory {settings.data_dir}: {exc.strerror}") from None


def open_store(settings: Settings) -> Engine:
    """The database alone, read-only, for the commands that only query it (``decisions``,
    ``report``, ``audit``): no policies, no pipeline, which a query would pay for at every
    start without using (SPEC: query commands import only what they use)."""
    from worker.private import tighten
    from worker.store.db import TRANSIENT_DB_ERRORS, make_engine, migrate

    try:
        tighten(settings.data_dir)
        engine = make_engine(settings.effective_database_url, settings.db_busy_timeout)
        migrate(engine)
    except OSError as exc:
        raise TransientError(f"data directory {settings.data_dir}: {exc.strerror}") from None
    except TRANSIENT_DB_ERRORS as exc:
        raise TransientError(f"database unavailable: {exc.orig}") from None
    return engine.execution_options(mailgate_read=True)
