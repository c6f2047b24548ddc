"""What every ``mailgate`` command does first: read the settings once, then open the gate.

Both raise only mailgate's own errors (``ConfigError``, ``TransientError``), so that the
command line's exit-code table (``worker.exits``) decides what each failure means.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from worker.errors import TransientError
from worker.settings import Settings, load_settings

if TYPE_CHECKING:
    from worker.pipeline import Mailgate


def read_settings(config_file: Path | None) -> Settings:
    """The settings (environment over ``--config`` file); logging set up from them."""
    from worker.logs import configure_logging

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
