"""The settings by concern: one class per concern, each with its fields and their checks.

``worker.settings.Settings`` is all of them together (they are its bases), so every
setting is still one flat attribute named as its variable (``MAILGATE_SMTP_LISTEN`` is
``settings.smtp_listen``; a TOML key is the same name), and pydantic collects each
class's fields and validators. A new setting is a field in the class of its concern
(or in ``Settings`` itself), documented in ``deploy/env.example`` and the README.
"""

from __future__ import annotations

import ssl
from datetime import date
from pathlib import Path
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator, model_validator

from worker.errors import ConfigError
from worker.ingest_socket import DEFAULT_DATA_DIR
from worker.shipped import shipped_policy_dir

DEFAULT_MAX_MESSAGE_BYTES = 25 * 1024 * 1024
MIN_REPLY_SECRET = 32
MIN_API_TOKEN = 24
# Values anyone who read the repository knows: deploy/env.example's, and the one it used to ship.
PLACEHOLDER_MARKS = ("change-me", "replace-me")
OFF = (None, "", "off", "none")


class StoreSettings(BaseModel):
    """Where mailgate keeps what it decided, and for how long."""

    data_dir: Path = Path(DEFAULT_DATA_DIR)
    database_url: str | None = None
    # Unset: the policies shipped in the package (SPEC "Installing"), wherever it runs from.
    policy_dir: Path = Field(default_factory=shipped_policy_dir)
    # How long a SQLite writer waits for the lock before the message is answered 451.
    db_busy_timeout: float = Field(default=15, gt=0)
    retention_days: float | None = Field(default=None, gt=0)

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        scheme = urlsplit(value).scheme
        if not (scheme.startswith("sqlite") or scheme.startswith("postgresql")):
            raise ValueError("expected sqlite:///… or postgresql+psycopg://…")
        if scheme in ("postgresql", "postgres"):
            # psycopg 3 is the driver we ship; plain postgresql:// would pick psycopg2.
            return "postgresql+psycopg" + value[len(scheme) :]
        return value

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'mailgate.db').resolve()}"

    @property
    def outbox_dir(self) -> Path:
        return self.data_dir / "outbox"


class ListenerSettings(BaseModel):
    """What ``serve`` listens on, and the limits a public MX needs."""

    smtp_listen: str | None = "127.0.0.1:2525"
    lmtp_listen: str | None = None
    milter_listen: str | None = None
    # Where `serve` takes messages from `mailgate ingest` (worker.ingest_socket): unset
    # means <data dir>/ingest.sock, "off" disables; the launcher reads it by the same rule.
    ingest_socket: str | None = None
    http_listen: str | None = "127.0.0.1:8025"
    max_message_bytes: int = Field(default=DEFAULT_MAX_MESSAGE_BYTES, gt=0)
    smtp_idle_timeout: float = Field(default=300, gt=0)
    smtp_data_timeout: float = Field(default=600, gt=0)
    smtp_max_connections: int = Field(default=200, gt=0)
    smtp_max_connections_per_ip: int = Field(default=20, gt=0)
    # Hostile peers (worker.ingress.connections): NOOP/RSET/VRFY per SMTP session, caps and
    # idle timeouts of the milter and HTTP listeners, and the idle timeout of every listener
    # while it is nearly full (Postfix's ${stress?...} values).
    smtp_junk_command_limit: int = Field(default=100, gt=0)
    milter_max_connections: int = Field(default=200, gt=0)
    milter_idle_timeout: float = Field(default=300, gt=0)
    http_max_connections: int = Field(default=100, gt=0)
    http_idle_timeout: float = Field(default=30, gt=0)
    stress_idle_timeout: float = Field(default=10, gt=0)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    proxy_protocol: bool = False

    @field_validator("smtp_listen", "lmtp_listen", "http_listen")
    @classmethod
    def _check_listen(cls, value: str | None) -> str | None:
        if value in OFF:
            return None
        assert value is not None
        _split_hostport(value, "listen")
        return value

    @field_validator("milter_listen")
    @classmethod
    def _check_milter_listen(cls, value: str | None) -> str | None:
        if value in OFF:
            return None
        assert value is not None
        parse_milter_listen(value)
        return value

    def listen_address(self, which: str) -> tuple[str, int] | None:
        value = getattr(self, f"{which}_listen")
        return None if value is None else _split_hostport(value, which)

    def tls_context(self) -> ssl.SSLContext | None:
        """The STARTTLS context, or None; a bad certificate or key is a ConfigError."""
        if self.tls_cert is None and self.tls_key is None:
            return None
        if self.tls_cert is None or self.tls_key is None:
            raise ConfigError("bad setting MAILGATE_TLS_CERT/MAILGATE_TLS_KEY: set both or neither")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        try:
            context.load_cert_chain(self.tls_cert, self.tls_key)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"bad setting MAILGATE_TLS_CERT/MAILGATE_TLS_KEY: {exc}") from None
        return context


class DecidingSettings(BaseModel):
    """How a message is decided and answered: the desk's domains, the reply secret, when
    to reject in the dialogue and when a reply would be backscatter."""

    support_domains: list[str] | None = None
    reply_secret: str | None = None
    reply_secret_file: Path | None = None
    reject_mode: Literal["reply", "smtp"] = "reply"
    trusted_authserv_id: str | None = None
    # Load the language models before listening, so no client waits for them inside a
    # dialogue and forked workers share them (~0.1 s, a few MiB). Off: loaded by the first
    # message that needs them.
    language_preload: bool = True

    @model_validator(mode="after")
    def _reply_secret(self) -> Self:
        """Read the ``_FILE`` variant once, then refuse a short or well-known secret.

        ConfigError (not ValueError) so that the one line names the setting itself.
        """
        if self.reply_secret_file is not None:
            self.reply_secret = _read_secret_file(self.reply_secret_file, "REPLY_SECRET")
        _check_secret(self.reply_secret, "MAILGATE_REPLY_SECRET", MIN_REPLY_SECRET)
        return self

    @field_validator("support_domains", mode="before")
    @classmethod
    def _split_domains(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part for part in value.replace(";", ",").split(",")]
        if isinstance(value, list):
            domains = [str(d).strip().lower().lstrip("@") for d in value if str(d).strip()]
            for domain in domains:
                if "." not in domain or " " in domain or "@" in domain:
                    raise ValueError(f"not a domain: {domain!r}")
            return domains or None
        return value


class DeliverySettings(BaseModel):
    """Where outgoing mail and accepted follow-ups go."""

    relay_url: str | None = None
    forward_to: str | None = None
    forward_url: str | None = None

    @field_validator("relay_url")
    @classmethod
    def _check_relay(cls, value: str | None) -> str | None:
        return _url(value, ("smtp", "smtps"), "expected smtp://host:port or smtps://host:port")

    @field_validator("forward_to")
    @classmethod
    def _check_forward_to(cls, value: str | None) -> str | None:
        if not value:
            return None
        if value.count("@") != 1 or any(c in value for c in " <>,\r\n"):
            raise ValueError("expected one email address")
        return value.lower()

    @field_validator("forward_url")
    @classmethod
    def _check_forward_url(cls, value: str | None) -> str | None:
        return _url(value, ("http", "https"), "expected an http:// or https:// URL")


class ImapSettings(BaseModel):
    """The mailboxes ``serve`` drains, and where it moves what it decided."""

    imap_url: list[str] | None = None
    imap_processed: str = "Processed"
    imap_rejected: str = "Rejected"
    imap_quarantine: str = "Quarantine"
    imap_idle_seconds: float = Field(default=600, gt=0, le=1740)
    imap_lease_seconds: float = Field(default=60, ge=3)

    @field_validator("imap_url", mode="before")
    @classmethod
    def _split_imap(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            for url in value:
                parts = urlsplit(str(url))
                if parts.scheme not in ("imap", "imaps") or not parts.hostname:
                    raise ValueError("expected imaps://user:pass@host:port/MAILBOX or imap://…")
                if not parts.username:
                    raise ValueError(f"no user name in {parts.scheme}://{parts.hostname}")
            return value or None
        return value


class OAuthSettings(BaseModel):
    """OAuth2 for IMAP and the relay (SPEC "IMAP authentication"); worker.oauth uses them."""

    imap_auth: Literal["password", "xoauth2", "oauthbearer"] = "password"
    relay_auth: Literal["password", "xoauth2"] = "password"
    oauth_token_url: str | None = None
    oauth_provider: Literal["microsoft", "google"] | None = None
    oauth_tenant: str | None = None
    oauth_client_id: str | None = None
    oauth_client_secret: str | None = None
    oauth_client_secret_file: Path | None = None
    oauth_refresh_token: str | None = None
    oauth_refresh_token_file: Path | None = None
    oauth_scope: str | None = None
    oauth_secret_expires: date | None = None

    @field_validator("oauth_token_url")
    @classmethod
    def _check_token_url(cls, value: str | None) -> str | None:
        return _url(value, ("http", "https"), "expected an https:// token endpoint URL")

    @field_validator("oauth_client_secret_file", "oauth_refresh_token_file")
    @classmethod
    def _check_secret_file(cls, value: Path | None) -> Path | None:
        return _existing_file(value)

    @model_validator(mode="after")
    def _check_oauth(self) -> Self:
        uses_oauth = self.imap_auth != "password" or self.relay_auth == "xoauth2"
        if not uses_oauth:
            return self
        if not (self.oauth_token_url or self.oauth_provider):
            raise ValueError("MAILGATE_OAUTH_TOKEN_URL or MAILGATE_OAUTH_PROVIDER is required")
        if self.oauth_provider == "microsoft" and not self.oauth_tenant:
            raise ValueError("MAILGATE_OAUTH_TENANT is required for the microsoft provider")
        if not self.oauth_client_id and not self.oauth_client_secret_file:
            raise ValueError("MAILGATE_OAUTH_CLIENT_ID is required")
        return self


class OperationSettings(BaseModel):
    """How operators reach and watch mailgate: the API token and the log level."""

    api_token: str | None = None
    api_token_file: Path | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @model_validator(mode="after")
    def _api_token(self) -> Self:
        """Read the ``_FILE`` variant once, then refuse a short or well-known token."""
        if self.api_token_file is not None:
            self.api_token = _read_secret_file(self.api_token_file, "API_TOKEN")
        _check_secret(self.api_token, "MAILGATE_API_TOKEN", MIN_API_TOKEN)
        return self


def _split_hostport(value: str, name: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"expected host:port, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def parse_milter_listen(value: str) -> tuple[str, int] | Path:
    """MAILGATE_MILTER_LISTEN: ``host:port``, or ``unix:/path`` for a local MTA."""
    if value.startswith("unix:"):
        path = value[len("unix:") :]
        if not path.startswith("/"):
            raise ValueError(f"expected unix:/absolute/path, got {value!r}")
        return Path(path)
    return _split_hostport(value, "milter")


def _read_secret_file(path: Path, name: str) -> str:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError(
            f"bad setting MAILGATE_{name}_FILE: cannot read {path}: {reason}"
        ) from None


def _check_secret(value: str | None, name: str, minimum: int) -> None:
    if not value:  # unset: a generated reply secret, or a closed API
        return
    if any(mark in value.lower() for mark in PLACEHOLDER_MARKS):
        raise ConfigError(f"bad setting {name}: still the placeholder from deploy/env.example")
    if len(value) < minimum:
        raise ConfigError(
            f"bad setting {name}: {len(value)} characters, at least {minimum} needed "
            "(e.g. openssl rand -hex 32)"
        )


def _existing_file(value: Path | None) -> Path | None:
    """A file setting: unset, or a file that is there."""
    if value is not None and not value.is_file():
        raise ValueError(f"no such file: {value}")
    return value


def _url(value: str | None, schemes: tuple[str, ...], expected: str) -> str | None:
    """A URL setting: empty means unset; otherwise one of ``schemes`` with a host."""
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(expected)
    return value
