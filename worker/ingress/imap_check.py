"""``mailgate imap check``: connect to each mailbox, say what is there and what is missing.

Nothing changes on the server (the mailbox is examined read-only, no folder is created):
one block per mailbox with its messages, ``UIDVALIDITY``, the capabilities mailgate relies
on (MOVE, UIDPLUS, IDLE), the folders it moves mail to, and how it logs in — with OAuth2,
whether a token was obtained and when it expires.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from imapclient.exceptions import IMAPClientError, LoginError

from worker.errors import ConfigError
from worker.ingress.imap import ImapTarget, connect
from worker.oauth import TokenError, TokenManager, credentials_for
from worker.settings import Settings


def describe(target: ImapTarget, credentials: TokenManager | None = None) -> dict[str, Any]:
    """``mailgate imap check``: connect, list what is there and what is missing; no change."""
    client = connect(target, credentials=credentials)
    try:
        capabilities = sorted(c.decode() for c in client.capabilities())
        folders = [name for _flags, _sep, name in client.list_folders()]
        examined = client.select_folder(target.mailbox, readonly=True)
        return {
            "mailbox": target.key,
            "capabilities": capabilities,
            "folders": folders,
            "uidvalidity": int(examined[b"UIDVALIDITY"]),
            "messages": int(examined.get(b"EXISTS", 0)),
        }
    finally:
        client.logout()


def print_mailbox_checks(settings: Settings, say: Callable[[str], None]) -> int:
    """``mailgate imap check``: one block per mailbox, each line handed to ``say``; how
    many mailboxes could not be reached."""
    if not settings.imap_url:
        raise ConfigError("MAILGATE_IMAP_URL is not set")
    problems = 0
    for url in settings.imap_url or []:
        target = ImapTarget.parse(url, settings.imap_auth)
        credentials = credentials_for(settings, target.user) if target.auth else None
        try:
            info = describe(target, credentials)
        except TokenError as exc:
            say(f"FAIL {target.key}: auth {target.auth}, no token: {exc}")
            problems += 1
            continue
        except LoginError:
            say(f"FAIL {target.key}: login refused")
            problems += 1
            continue
        except (OSError, IMAPClientError) as exc:
            say(f"FAIL {target.key}: {type(exc).__name__}: {exc}")
            problems += 1
            continue
        _print_mailbox(settings, target.key, info, say)
        say(f"     auth: {auth_line(target.auth, credentials)}")
    return problems


def auth_line(method: str | None, credentials: Any) -> str:
    """``imap check``'s auth line: the method and, with OAuth2, the token and its expiry."""
    if credentials is None:
        return "password"
    health = credentials.health
    expires = health.token_expires_at.isoformat() if health.token_expires_at else "unknown"
    line = f"{method} ({health.provider}, {health.grant}); token obtained, expires {expires}"
    if health.degraded:
        line += f"; client secret expires {health.secret_expires}"
    return line


def _print_mailbox(
    settings: Settings, key: str, info: dict[str, Any], say: Callable[[str], None]
) -> None:
    wanted = {"MOVE", "UIDPLUS", "IDLE"}
    caps = set(info["capabilities"])
    say(f"ok   {key}: {info['messages']} messages, UIDVALIDITY {info['uidvalidity']}")
    missing_caps = sorted(wanted - caps)
    say(
        "     capabilities: "
        + " ".join(sorted(wanted & caps))
        + (f"; missing: {' '.join(missing_caps)}" if missing_caps else "")
    )
    folders = (settings.imap_processed, settings.imap_rejected, settings.imap_quarantine)
    for folder in (*folders, settings.imap_held):
        state = "present" if folder in info["folders"] else "missing (serve creates it)"
        say(f"     folder {folder}: {state}")
    if "MOVE" not in caps and "UIDPLUS" not in caps:
        say("     warning: without MOVE or UIDPLUS moved messages stay \\Deleted")
