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
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Literal, TextIO

from worker.errors import CannotCreateError, FileIOError, FileProblem, NoInputError

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


def opened_for_reading(path: Path) -> AbstractContextManager[TextIO]:
    return _opened(path, "r", _PATH_ERRORS, NoInputError)


def opened_for_writing(path: Path) -> AbstractContextManager[TextIO]:
    return _opened(path, "w", _CREATE_ERRORS, CannotCreateError)


@contextmanager
def _opened(
    path: Path, mode: Literal["r", "w"], named_errors: tuple[int, ...], named: type[FileProblem]
) -> Iterator[TextIO]:
    """``path`` opened as text; an error opening it is ``named`` when its errno is one of
    ``named_errors`` (missing input, cannot create), else an I/O error naming the path."""
    try:
        handle = path.open(mode, encoding="utf-8")
    except OSError as exc:
        if exc.errno in named_errors:
            raise named(path, _reason(exc)) from None
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
