"""Reading mail archives for ``mailgate replay``: mbox files, Maildir folders, one message.

Each message is decided under the policy in force at the time it was received. That time
is the newest sane date among its ``Received`` headers (the last hop into the mailbox),
else its ``Date`` header; a date in the future or before 1990 is not sane.
"""

from __future__ import annotations

import mailbox
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

from worker.clock import utcnow
from worker.mail import InboundMail

EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)


def open_archive(path: Path) -> mailbox.Mailbox:
    if path.is_dir():
        if not (path / "cur").is_dir() and not (path / "new").is_dir():
            raise ValueError(f"{path} is a directory but not a Maildir (no cur/ or new/)")
        return mailbox.Maildir(path, factory=None, create=False)
    if not path.is_file():
        raise ValueError(f"{path} does not exist")
    return mailbox.mbox(path, factory=None, create=False)


def is_single_message(path: Path) -> bool:
    """A file that is one message (an ``.eml``), not an mbox: it does not start with the
    mbox ``From `` separator line. An empty file is an empty mbox."""
    if not path.is_file():
        return False
    with path.open("rb") as handle:
        start = handle.read(5)
    return bool(start) and start != b"From "


def messages(path: Path) -> Iterator[bytes]:
    if is_single_message(path):
        yield path.read_bytes()
        return
    archive = open_archive(path)
    try:
        for key in archive.iterkeys():
            yield archive.get_bytes(key)
    finally:
        archive.close()


def count(path: Path) -> int:
    if is_single_message(path):
        return 1
    archive = open_archive(path)
    try:
        return len(archive)
    finally:
        archive.close()


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def received_at(mail: InboundMail, now: datetime | None = None) -> datetime | None:
    """When the message arrived, by its own headers; None when it says nothing usable."""
    now = now or utcnow()
    limit = now + timedelta(days=1)
    hops = []
    for header in mail.header_all("Received"):
        when = _parse(header.rpartition(";")[2])
        if when is not None and EARLIEST <= when <= limit:
            hops.append(when)
    if hops:
        return max(hops)
    when = _parse(mail.header("Date"))
    if when is not None and EARLIEST <= when <= limit:
        return when
    return None
