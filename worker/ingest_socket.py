"""The ingest socket's contract, shared by both ends: where it is, and how they talk.

``mailgate ingest`` (the entry point, ``worker.launcher``) hands its message to a running
``serve`` (``worker.ingress.handoff``) over a Unix socket; ``Settings`` names the same path.
All three import this module and nothing of each other, and it imports the standard
library only, so that a pipe process pays for no more than it uses.

The exchange, one JSON object per line: the client sends ``{"v": 1, "arguments": [[value,
exists], ...], "sender", "recipients", "json"}``; ``serve`` answers ``{"read": SOURCE}``
(the client then sends the length of SOURCE's bytes on a line and the bytes),
``{"fallback": reason}`` (decide in-process), or at the end ``{"exit", "stdout",
"stderr"}``.
"""

from __future__ import annotations

import json
import os

TYPE_CHECKING = False  # typing itself costs a pipe process ~10 ms to import
if TYPE_CHECKING:
    from typing import Any

PROTOCOL = 1
SETTING = "MAILGATE_INGEST_SOCKET"
SOCKET_NAME = "ingest.sock"
MAX_SOCKET_PATH = 107  # sun_path holds 108 bytes with the terminating NUL
DEFAULT_DATA_DIR = "./var"  # Settings.data_dir's default
OFF = ("off", "none")
# An answer comes after a commit; a busy database may hold it for MAILGATE_DB_BUSY_TIMEOUT.
ANSWER_SECONDS = 600.0
READ_SECONDS = 60.0  # serve's wait for each line: the client has the message before it calls


def socket_path(value: str | None, data_dir: str) -> str | None:
    """MAILGATE_INGEST_SOCKET: unset or empty → ``<data dir>/ingest.sock``; off → None.

    A default path too long for a Unix socket address is off too, rather than a ``serve``
    that refuses to start over a setting nobody wrote; an explicit one is refused by name.
    """
    if value in OFF:
        return None
    if not value:
        path = os.path.join(data_dir, SOCKET_NAME)
        return path if len(os.fsencode(path)) <= MAX_SOCKET_PATH else None
    return value


def line(message: dict[str, Any]) -> bytes:
    """One message of the exchange, as it goes on the wire."""
    return json.dumps(message).encode() + b"\n"


def read_line(data: bytes) -> dict[str, Any]:
    """One message read off the wire; ``ValueError`` for an end of stream or anything else."""
    message = json.loads(data or b"null")
    if not isinstance(message, dict):
        raise ValueError("not a message of the ingest socket")
    return message


def length_line(size: int) -> bytes:
    """The line before the message bytes: their length."""
    return b"%d\n" % size
