"""SASL logins with a token: IMAP (imapclient) and the relay (smtplib), retried once.

A server may refuse a token the cache still thinks valid: it was revoked, or the server's
clock runs ahead. So a refused AUTHENTICATE drops the cached token and tries once more with
a fresh one (IMAP: on a new connection) before the caller's usual backoff; a second refusal
is a real login failure.
"""

from __future__ import annotations

import smtplib
from collections.abc import Callable
from typing import Any, TypeVar

import structlog
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from worker.oauth.manager import TokenManager
from worker.oauth.sasl import Mechanism, xoauth2

log = structlog.get_logger("mailgate.oauth")
T = TypeVar("T")


def imap_login(
    client: IMAPClient, user: str, credentials: TokenManager, mechanism: Mechanism
) -> None:
    """One AUTHENTICATE; the caller retries on a new connection (see ``fresh_token_once``)."""
    token = credentials.token()
    if mechanism == "oauthbearer":
        client.oauthbearer_login(user, token)
    else:
        client.oauth2_login(user, token)


def fresh_token_once(open_session: Callable[[], T], credentials: TokenManager | None) -> T:
    """``open_session()``; after a refused login, once more with a newly obtained token.

    A new connection rather than a second AUTHENTICATE on the same one: after a failure
    Dovecot and Exchange may refuse further attempts on that connection.
    """
    try:
        return open_session()
    except LoginError:
        if credentials is None:
            raise
        credentials.invalidate()
        log.info("oauth_login_refused_renewing", where="imap", provider=credentials.source.provider)
    return open_session()


def smtp_login(client: smtplib.SMTP, user: str, credentials: TokenManager) -> None:
    def attempt(token: str) -> None:
        answer = xoauth2(user, token)
        sent: list[bool] = []

        def respond(challenge: bytes | None = None) -> str:
            # First the token; on an error challenge (JSON) an empty line ends the exchange.
            if sent:
                return ""
            sent.append(True)
            return answer

        client.auth("XOAUTH2", respond, initial_response_ok=True)

    _twice(attempt, credentials, smtplib.SMTPAuthenticationError, "relay")


def _twice(
    attempt: Callable[[str], Any],
    credentials: TokenManager,
    refused: type[Exception],
    where: str,
) -> None:
    try:
        attempt(credentials.token())
        return
    except refused:
        credentials.invalidate()
        log.info("oauth_login_refused_renewing", where=where, provider=credentials.source.provider)
    attempt(credentials.token())
