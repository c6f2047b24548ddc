"""Named operators and their roles: who may read the console, act on held mail, or do anything.

``MAILGATE_OPERATORS_FILE`` is a TOML file of ``[[operator]]`` tables (``name``, ``role``,
``token_sha256``: the hex SHA-256 of the operator's token; the token itself is never stored).
``MAILGATE_API_TOKEN`` stays valid as the ``admin`` token of an operator named ``admin``. A
token is looked up by its digest, compared in constant time against every entry, so that
how long a refusal takes says nothing about which digests exist. ``new_operator`` makes
the random token ``mailgate operators add`` prints once, and the line to add to the file.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import tomllib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from worker.errors import ConfigError

if TYPE_CHECKING:
    from worker.settings import Settings

ADMIN_NAME = "admin"  # the operator MAILGATE_API_TOKEN authenticates
TOKEN_BYTES = 32  # 43 URL-safe characters, above the 24 the SPEC asks for


class Role(StrEnum):
    """What an operator may do; each role may do everything the ones before it may."""

    VIEWER = "viewer"  # read decisions, held mail, the message view
    OPERATOR = "operator"  # and act on held and quarantined mail, read raw messages
    ADMIN = "admin"  # and everything else (tickets)

    @property
    def rank(self) -> int:
        return list(Role).index(self)


@dataclass(frozen=True)
class Operator:
    """An authenticated person: the name every record of their actions carries."""

    name: str
    role: Role

    def may(self, needed: Role) -> bool:
        return self.role.rank >= needed.rank


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
    role: Role
    token_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    operator: list[_Entry] = []


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class OperatorBook:
    """Every operator who may use the API, by the digest of their token."""

    def __init__(self, entries: list[tuple[str, Operator]]) -> None:
        self._entries = entries

    @classmethod
    def from_settings(cls, settings: Settings) -> OperatorBook:
        entries = _read_file(settings.operators_file) if settings.operators_file else []
        if settings.api_token:
            if any(operator.name == ADMIN_NAME for _, operator in entries):
                raise ConfigError(
                    f"bad setting MAILGATE_OPERATORS_FILE: {settings.operators_file}: the name "
                    f"{ADMIN_NAME!r} belongs to MAILGATE_API_TOKEN's operator"
                )
            admin = Operator(ADMIN_NAME, Role.ADMIN)
            entries.append((token_digest(settings.api_token), admin))
        return cls(entries)

    def __bool__(self) -> bool:
        return bool(self._entries)

    def authenticate(self, token: str) -> Operator | None:
        """The operator whose token this is, or None; every entry is compared."""
        offered = token_digest(token).encode()
        found = None
        for digest, operator in self._entries:
            if hmac.compare_digest(offered, digest.encode()):
                found = operator
        return found


def _read_file(path: Path) -> list[tuple[str, Operator]]:
    where = f"bad setting MAILGATE_OPERATORS_FILE: {path}"
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{where}: not valid TOML: {exc}") from None
    try:
        parsed = _File.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        raise ConfigError(f"{where}: key {key}: {first['msg']}") from None
    entries: list[tuple[str, Operator]] = []
    for number, entry in enumerate(parsed.operator):
        if any(operator.name == entry.name for _, operator in entries):
            raise ConfigError(f"{where}: key operator.{number}.name: {entry.name!r} twice")
        if any(digest == entry.token_sha256 for digest, _ in entries):
            raise ConfigError(f"{where}: key operator.{number}.token_sha256: shared token")
        entries.append((entry.token_sha256, Operator(entry.name, entry.role)))
    return entries


def new_operator(name: str, role: Role) -> tuple[str, str]:
    """A fresh random token for ``name``, and the ``[[operator]]`` table to add for it."""
    _Entry(name=name, role=role, token_sha256="0" * 64)  # the name must be one the file takes
    token = secrets.token_urlsafe(TOKEN_BYTES)
    table = (
        f'[[operator]]\nname = "{name}"\nrole = "{role}"\ntoken_sha256 = "{token_digest(token)}"\n'
    )
    return token, table
