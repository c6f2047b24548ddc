"""Token sources, one per kind of token endpoint, each built on the provider's own library.

- ``GenericSource``: any OAuth2 server at ``MAILGATE_OAUTH_TOKEN_URL``, through authlib's
  requests client (client credentials grant, or the refresh-token grant when a refresh token
  is set; a rotated refresh token is kept in memory).
- ``MicrosoftSource``: Microsoft Entra through msal (app-only client credentials for
  ``IMAP.AccessAsApp`` / ``SMTP.SendAsApp``, or a delegated refresh token).
- ``GoogleSource``: google-auth; a service-account key in ``MAILGATE_OAUTH_CLIENT_SECRET_FILE``
  means domain-wide delegation (the mailbox user is the subject), otherwise a user's
  refresh token with the client id and secret.
Each ``fetch`` returns a ``Token`` or raises ``TokenRefused`` / ``TokenEndpointUnreachable``
with the secret redacted from any text the endpoint sent back.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

import requests

from worker.clock import aware, utcnow
from worker.oauth.errors import TokenEndpointUnreachable, TokenRefused

MICROSOFT_AUTHORITY = "https://login.microsoftonline.com/"
MICROSOFT_SCOPE = "https://outlook.office365.com/.default"
GOOGLE_SCOPE = "https://mail.google.com/"
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
TIMEOUT = 15.0


@dataclass(frozen=True)
class Token:
    access_token: str
    expires_at: datetime
    obtained_at: datetime

    @classmethod
    def lasting(cls, access_token: str, seconds: float) -> Token:
        now = utcnow()
        return cls(access_token, now + timedelta(seconds=seconds), now)


class TokenSource(Protocol):
    provider: str
    grant: str

    def fetch(self) -> Token: ...


@dataclass
class Secrets:
    """Client secret and refresh token, read once; ``redact`` keeps them out of messages."""

    client_id: str
    client_secret: str | None
    refresh_token: str | None

    def redact(self, text: str) -> str:
        for secret in (self.client_secret, self.refresh_token):
            if secret:
                text = text.replace(secret, "[redacted]")
        return text[:300]


class GenericSource:
    provider = "generic"

    def __init__(self, token_url: str, secrets: Secrets, scope: str | None) -> None:
        self.token_url = token_url
        self.secrets = secrets
        self.scope = scope
        self.grant = "refresh_token" if secrets.refresh_token else "client_credentials"

    def fetch(self) -> Token:
        from authlib.integrations.base_client.errors import OAuthError
        from authlib.integrations.requests_client import OAuth2Session

        session = OAuth2Session(
            self.secrets.client_id,
            self.secrets.client_secret,
            scope=self.scope,
            token_endpoint_auth_method="client_secret_post",
        )
        try:
            with session:
                if self.secrets.refresh_token:
                    answer = session.refresh_token(
                        self.token_url, refresh_token=self.secrets.refresh_token, timeout=TIMEOUT
                    )
                else:
                    answer = session.fetch_token(
                        self.token_url, grant_type="client_credentials", timeout=TIMEOUT
                    )
        except OAuthError as exc:
            raise TokenRefused(
                exc.error or "error", self.secrets.redact(exc.description or "")
            ) from None
        except (requests.RequestException, ValueError) as exc:
            raise TokenEndpointUnreachable(
                self.secrets.redact(f"{type(exc).__name__}: {exc}")
            ) from None
        if answer.get("refresh_token"):
            self.secrets.refresh_token = answer["refresh_token"]  # rotated: keep the new one
        return _token_from(answer)


class MicrosoftSource:
    provider = "microsoft"

    def __init__(self, tenant: str, secrets: Secrets, scope: str | None) -> None:
        self.authority = MICROSOFT_AUTHORITY + tenant
        self.secrets = secrets
        self.scopes = [scope or MICROSOFT_SCOPE]
        self.grant = "refresh_token" if secrets.refresh_token else "client_credentials"
        self.instance_discovery = True  # msal's check of the authority host with Microsoft
        self._app: Any = None

    def fetch(self) -> Token:
        import msal

        try:
            if self._app is None:
                self._app = msal.ConfidentialClientApplication(
                    self.secrets.client_id,
                    client_credential=self.secrets.client_secret,
                    authority=self.authority,
                    instance_discovery=self.instance_discovery,
                    timeout=TIMEOUT,
                )
            # msal keeps its own cache; our cache decides when to renew, so skip msal's.
            cached = self._app.token_cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)
            for old in list(cached):  # a generator over the cache: copy before removing
                self._app.token_cache.remove_at(old)
            if self.secrets.refresh_token:
                answer = self._app.acquire_token_by_refresh_token(
                    self.secrets.refresh_token, scopes=self.scopes
                )
            else:
                answer = self._app.acquire_token_for_client(scopes=self.scopes)
        except (requests.RequestException, ValueError) as exc:
            self._app = None
            raise TokenEndpointUnreachable(
                self.secrets.redact(f"{type(exc).__name__}: {exc}")
            ) from None
        if "access_token" not in answer:
            code = str(answer.get("error") or "error")
            codes = answer.get("error_codes") or []
            detail = " ".join(f"AADSTS{c}" for c in codes) or str(answer.get("error_description"))
            raise TokenRefused(code, self.secrets.redact(detail)) from None
        if answer.get("refresh_token"):
            self.secrets.refresh_token = answer["refresh_token"]
        return _token_from(answer)


class GoogleSource:
    provider = "google"

    def __init__(self, secrets: Secrets, scope: str | None, user: str) -> None:
        self.secrets = secrets
        self.scopes = [scope or GOOGLE_SCOPE]
        self.user = user
        self.service_account = _service_account_info(secrets.client_secret)
        self.grant = "service_account" if self.service_account else "refresh_token"

    def credentials(self) -> Any:
        if self.service_account is not None:
            from google.oauth2 import service_account

            return service_account.Credentials.from_service_account_info(
                self.service_account, scopes=self.scopes, subject=self.user
            )
        from google.oauth2.credentials import Credentials

        return Credentials(
            None,
            refresh_token=self.secrets.refresh_token,
            token_uri=GOOGLE_TOKEN_URL,
            client_id=self.secrets.client_id,
            client_secret=self.secrets.client_secret,
            scopes=self.scopes,
        )

    def fetch(self) -> Token:
        from google.auth.exceptions import RefreshError, TransportError
        from google.auth.transport.requests import Request

        credentials = self.credentials()
        try:
            credentials.refresh(Request())
        except RefreshError as exc:
            answer = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], dict) else {}
            code = str(answer.get("error") or "refresh_error")
            raise TokenRefused(
                code, self.secrets.redact(str(exc.args[0]) if exc.args else "")
            ) from None
        except TransportError as exc:
            raise TokenEndpointUnreachable(
                self.secrets.redact(f"{type(exc).__name__}: {exc}")
            ) from None
        now = utcnow()
        expiry = aware(credentials.expiry) if credentials.expiry else now + timedelta(hours=1)
        return Token(credentials.token, expiry, now)


def _service_account_info(secret: str | None) -> dict[str, Any] | None:
    """The service-account key when the client secret is one (a JSON document), else None."""
    if not secret or not secret.lstrip().startswith("{"):
        return None
    try:
        info = json.loads(secret)
    except ValueError:
        return None
    return info if isinstance(info, dict) and info.get("type") == "service_account" else None


def _token_from(answer: dict[str, Any]) -> Token:
    token = answer.get("access_token")
    if not isinstance(token, str) or not token:
        raise TokenEndpointUnreachable("token endpoint answered without an access_token") from None
    try:
        lifetime = float(answer.get("expires_in") or 3600)
    except (TypeError, ValueError):
        lifetime = 3600.0
    return Token.lasting(token, lifetime)
