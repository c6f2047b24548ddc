"""The token cache of one mailbox (or the relay): renew ahead of expiry, forget when refused.

A token is renewed once a quarter of its lifetime (at most five minutes) is left, so an
hour-long token is renewed at 55 minutes and a test's three-second token after two.
``invalidate`` drops it after the server refused an AUTHENTICATE (revoked, or the server's
clock disagrees), so that the next login asks the endpoint again. ``health`` is what
``/readyz``, ``/metrics`` and ``mailgate imap check`` show; the client secret's expiry date
(``MAILGATE_OAUTH_SECRET_EXPIRES``) turns it degraded 14 days ahead, logged once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote, urlsplit

import structlog

from worker.clock import utcnow
from worker.errors import ConfigError
from worker.oauth.errors import TokenEndpointUnreachable, TokenRefused
from worker.oauth.providers import (
    GenericSource,
    GoogleSource,
    MicrosoftSource,
    Secrets,
    Token,
    TokenSource,
)
from worker.settings import Settings

log = structlog.get_logger("mailgate.oauth")
MAX_MARGIN = timedelta(minutes=5)
SECRET_WARNING = timedelta(days=14)


@dataclass
class CredentialHealth:
    provider: str
    grant: str
    token_expires_at: datetime | None = None
    obtained: int = 0  # tokens obtained since start
    refused: str | None = None  # the endpoint's error code while it refuses
    secret_expires: date | None = None

    def secret_days_left(self) -> int | None:
        if self.secret_expires is None:
            return None
        return (self.secret_expires - utcnow().date()).days

    @property
    def degraded(self) -> bool:
        left = self.secret_days_left()
        return left is not None and left <= SECRET_WARNING.days

    def summary(self) -> str:
        if self.refused:
            return f"token endpoint refuses: {self.refused}"
        if self.degraded:
            return f"degraded: client secret expires {self.secret_expires}"
        return "ok"


class TokenManager:
    """Hands out a valid access token for one user; thread-safe."""

    def __init__(self, source: TokenSource, secret_expires: date | None = None) -> None:
        self.source = source
        self.health = CredentialHealth(source.provider, source.grant, secret_expires=secret_expires)
        self._lock = threading.Lock()
        self._token: Token | None = None
        self._warned_secret = False

    def token(self) -> str:
        with self._lock:
            if self._token is None or utcnow() >= self._renew_at(self._token):
                self._token = self._acquire()
            return self._token.access_token

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    @staticmethod
    def _renew_at(token: Token) -> datetime:
        lifetime = token.expires_at - token.obtained_at
        return token.expires_at - min(MAX_MARGIN, lifetime / 4)

    def _acquire(self) -> Token:
        provider = self.source.provider
        try:
            token = self.source.fetch()
        except TokenRefused as exc:
            self.health.refused = exc.code
            log.error(
                "oauth_token_refused", provider=provider, error=exc.code, detail=exc.description
            )
            raise
        except TokenEndpointUnreachable as exc:
            log.warning("oauth_token_endpoint_unreachable", provider=provider, detail=str(exc))
            raise
        self.health.refused = None
        self.health.token_expires_at = token.expires_at
        self.health.obtained += 1
        log.info(
            "oauth_token_obtained",
            provider=provider,
            grant=self.source.grant,
            expires_at=token.expires_at.isoformat(),
        )
        self._warn_secret_expiry()
        return token

    def _warn_secret_expiry(self) -> None:
        if self.health.degraded and not self._warned_secret:
            self._warned_secret = True
            log.warning(
                "oauth_client_secret_expiring",
                provider=self.source.provider,
                expires=str(self.health.secret_expires),
                days_left=self.health.secret_days_left(),
            )


def credentials_for(settings: Settings, user: str) -> TokenManager:
    """The token manager for ``user`` (the mailbox or relay login) from MAILGATE_OAUTH_*."""
    secrets = Secrets(
        client_id=settings.oauth_client_id or "",
        client_secret=_secret(settings.oauth_client_secret, settings.oauth_client_secret_file),
        refresh_token=_secret(settings.oauth_refresh_token, settings.oauth_refresh_token_file),
    )
    source: TokenSource
    if settings.oauth_token_url:
        source = GenericSource(settings.oauth_token_url, secrets, settings.oauth_scope)
    elif settings.oauth_provider == "microsoft":
        source = MicrosoftSource(settings.oauth_tenant or "", secrets, settings.oauth_scope)
    elif settings.oauth_provider == "google":
        source = GoogleSource(secrets, settings.oauth_scope, user)
    else:
        raise ConfigError("bad setting MAILGATE_OAUTH_TOKEN_URL: set it or MAILGATE_OAUTH_PROVIDER")
    return TokenManager(source, settings.oauth_secret_expires)


def relay_credentials(settings: Settings) -> TokenManager | None:
    """The relay's token manager with ``MAILGATE_RELAY_AUTH=xoauth2``, else None."""
    if settings.relay_auth != "xoauth2" or not settings.relay_url:
        return None
    return credentials_for(settings, unquote(urlsplit(settings.relay_url).username or ""))


def _secret(value: str | None, path: Path | None) -> str | None:
    """The setting, else the file's content: read once, here, at start-up."""
    if value:
        return value
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8").strip() or None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}") from None
