"""Files the operator names on the command line, opened so that a problem names the path.

Reading something that is missing, unreadable or a directory raises ``NoInputError``;
writing where nothing can be created (no such directory, no permission, a directory in the
way, a read-only file system) raises ``CannotCreateError``. Any other ``OSError`` (a disk
error, a full disk) becomes ``FileIOError``. Each names the path, so the command line can
say it in one line and exit with the matching sysexits code, never with a traceback.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from worker.errors import CannotCreateError, FileIOError, NoInputError

# What "cannot open this path" looks like, as opposed to a failing disk.
_PATH_ERRORS = (errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.ELOOP)
_CREATE_ERRORS = (*_PATH_ERRORS, errno.EROFS, errno.ENAMETOOLONG)


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def read_bytes(source: str | Path) -> bytes:
    """A file's bytes, or standard input's for ``-``."""
    try:
        if str(source) == "-":
            return sys.stdin.buffer.read()
        return Path(source).read_bytes()
    except OSError as exc:
        if exc.errno in _PATH_ERRORS:
            raise NoInputError(source, _reason(exc)) from None
        name = "standard input" if str(source) == "-" else source
        raise FileIOError(name, _reason(exc)) from None


@contextmanager
def opened_for_reading(path: Path) -> Iterator[TextIO]:
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        if exc.errno in _PATH_ERRORS:
            raise NoInputError(path, _reason(exc)) from None
        raise FileIOError(path, _reason(exc)) from None
    with _io_errors_name(path), handle:
        yield handle


@contextmanager
def opened_for_writing(path: Path) -> Iterator[TextIO]:
    try:
        handle = path.open("w", encoding="utf-8")
    except OSError as exc:
        if exc.errno in _CREATE_ERRORS:
            raise CannotCreateError(path, _reason(exc)) from None
        raise FileIOError(path, _reason(exc)) from None
    with _io_errors_name(path), handle:
        yield handle


@contextmanager
def _io_errors_name(path: Path) -> Iterator[None]:
    """A read or write that fails half-way says which file it was."""
    try:
        yield
    except OSError as exc:
        raise FileIOError(path, _reason(exc)) from None


def write_text(path: Path, text: str) -> None:
    with opened_for_writing(path) as handle:
        handle.write(text)
