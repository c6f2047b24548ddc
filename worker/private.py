"""Private files: the data directory is ``0700`` and every file in it ``0600``.

The data directory holds every raw message (in the SQLite database, its WAL and SHM), the
reply spool and the generated reply secret. Files are created with an explicit mode rather
than by trusting the process umask, and SQLite gives its WAL and SHM the mode of the
database file, so a ``0600`` database keeps them private too. ``tighten`` runs at start-up
and brings an install made by an older version (``-rw-r--r--``) into line, saying so once.
The lock files that order writers (``held_exclusively``) are private files like the rest.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import structlog

log = structlog.get_logger("mailgate.files")
DIR_MODE = 0o700
FILE_MODE = 0o600


def private_directory(path: Path) -> None:
    """Create ``path`` (and parents) as ``0700``; an existing one is left to ``tighten``."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)


def create_private_file(path: Path) -> None:
    """Make sure ``path`` exists as an owner-only file before a library opens it."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    os.close(descriptor)


def open_private(path: Path, flags: int = os.O_WRONLY | os.O_CREAT | os.O_TRUNC) -> int:
    """``os.open`` with mode ``0600``: the file is private from its first byte."""
    return os.open(path, flags, FILE_MODE)


def tighten(data_dir: Path) -> int:
    """Remove group and other permissions below ``data_dir``; returns how many were changed."""
    if not data_dir.exists():
        private_directory(data_dir)
        return 0
    if data_dir.stat().st_mode & 0o077 == 0:
        # Nobody else can enter it, so nothing inside is readable to them: no walk over a
        # large spool on every `mailgate ingest`. Older versions left it 0755.
        return 0
    changed = 0
    for path in [data_dir, *data_dir.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            path.chmod(mode & 0o700)
            changed += 1
    if changed:
        log.warning("data_dir_tightened", data_dir=str(data_dir), paths=changed)
    return changed


@contextmanager
def held_exclusively(lock: Path) -> Iterator[None]:
    """An exclusive ``flock`` on the private file ``lock`` for the block: the next holder
    wakes the moment it is released, and a holder that dies releases it with its life."""
    descriptor = open_private(lock, os.O_RDWR | os.O_CREAT)
    with os.fdopen(descriptor, "r+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
