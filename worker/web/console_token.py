"""The quick start's console token: generated once into the data dir, and said where it is.

On the embedded default (SQLite in the data dir) with no ``MAILGATE_API_TOKEN``, the console
could not be opened at all. ``serve`` now reads ``<data dir>/console-token`` or creates it
(``0600``, created exclusively so two starting processes agree on one), uses it as the admin
token, and logs the console's URL and the file's path — never the token. A deployment with
its own database sets its own token; none is made up for it.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import structlog

from worker.settings import Settings

log = structlog.get_logger("mailgate.serve")
TOKEN_FILE = "console-token"


def announce_console(settings: Settings) -> None:
    """What ``serve`` calls first: the token when the SPEC says so, the console's URL and
    where the token is (never the token itself) in one ``console_token`` line."""
    address = settings.listen_address("http")
    if address is None:
        return
    token_file = ensure_console_token(settings)
    if token_file is not None:
        url = f"http://{address[0]}:{address[1]}/"
        log.info("console_token", url=url, token_file=str(token_file.resolve()))


def token_path(settings: Settings) -> Path:
    return settings.data_dir / TOKEN_FILE


def ensure_console_token(settings: Settings) -> Path | None:
    """Give ``settings`` the generated token when the SPEC says to; the file's path, or None."""
    if settings.api_token or settings.database_url:
        return None
    path = token_path(settings)
    settings.api_token = _read_or_create(path)
    return path


def _read_or_create(path: Path) -> str:
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(token + "\n")
    return token


def token_hint(settings: Settings) -> str:
    """One sentence for the console's first screen: where this installation's token is."""
    path = token_path(settings)
    if not settings.database_url and settings.api_token and _holds(path, settings.api_token):
        return (
            f"This installation generated its console token into {path.resolve()} "
            f"(readable by the user that runs mailgate): cat {path.resolve()}"
        )
    if settings.api_token:
        return "Use MAILGATE_API_TOKEN, or the token you were given as an operator."
    return "No token is configured: set MAILGATE_API_TOKEN (at least 24 characters) and restart."


def _holds(path: Path, token: str) -> bool:
    """Whether the generated file is the token in use (a token set later replaces it)."""
    try:
        return path.read_text(encoding="ascii").strip() == token
    except (OSError, UnicodeDecodeError):
        return False
