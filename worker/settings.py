"""Every setting of mailgate in one place, read once and validated at start-up.

Settings come from ``MAILGATE_*`` environment variables or from a TOML file given with
``--config`` (keys are the setting names without the prefix, in lower case); the environment
wins. A bad value raises ``ConfigError`` whose message names the setting and the problem, so
start-up fails with one line instead of a traceback. The fields are grouped by concern in
``worker.setting_groups`` (store, listeners, deciding, delivery, IMAP, OAuth, operation)
and ``worker.workflow_settings`` (helpdesk, held mail, evidence);
``Settings`` is all of them, each field a flat attribute named as its variable. The reply
secret a setting may leave unset is generated in one place, ``worker.runtime``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from worker import settings_check
from worker.errors import ConfigError
from worker.ingest_socket import socket_path
from worker.setting_groups import (
    DecidingSettings,
    DeliverySettings,
    ImapSettings,
    ListenerSettings,
    OAuthSettings,
    OperationSettings,
    StoreSettings,
    parse_milter_listen,
)
from worker.workflow_settings import EvidenceSettings, HeldMailSettings, HelpdeskSettings

__all__ = ["Settings", "load_settings", "parse_milter_listen"]


class Settings(
    BaseSettings,
    StoreSettings,
    ListenerSettings,
    DecidingSettings,
    DeliverySettings,
    ImapSettings,
    OAuthSettings,
    OperationSettings,
    HelpdeskSettings,
    HeldMailSettings,
    EvidenceSettings,
):
    """The validated settings; field names are the ``MAILGATE_`` variables in lower case.

    A new setting is a field in its concern's class in ``worker.setting_groups`` (or
    here, for one that belongs to none), plus its line in ``deploy/env.example``."""

    model_config = SettingsConfigDict(env_prefix="MAILGATE_", extra="forbid")

    @property
    def ingest_socket_path(self) -> Path | None:
        path = socket_path(self.ingest_socket, str(self.data_dir))
        return None if path is None else Path(path)


def _describe(error: ValidationError, where: Any = None) -> str:
    first = error.errors()[0]
    loc = ".".join(str(part) for part in first["loc"]) or "?"
    if not first["loc"]:  # a model validator: its message names the settings itself
        return "bad setting " + str(first["msg"]).removeprefix("Value error, ")
    name = where(loc) if where is not None else f"MAILGATE_{loc.upper()}"
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        return f"unknown setting {name}"
    return f"bad setting {name}: {message}"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Read the settings once; raise ``ConfigError`` naming the first bad one."""
    values: dict[str, Any] = {}
    if config_file is not None:
        try:
            values = tomllib.loads(config_file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {config_file} not found") from None
        except OSError as exc:  # unreadable, or a directory: still one line naming it
            raise ConfigError(f"config file {config_file}: {exc.strerror or exc}") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {config_file}: {exc}") from None
    known = settings_check.known_names(Settings)
    if config_file is not None:  # a typo must not silently drop a setting (SPEC "Settings")
        settings_check.check_file(values, config_file, known)
    settings_check.check_environment(os.environ, known)
    file_keys = list(values)
    values = {settings_check.file_key(key): value for key, value in values.items()}
    values.update(overrides)
    try:
        settings = _SettingsWithFile(**values) if values else Settings()
    except ValidationError as exc:

        def where(name: str) -> str:
            source = settings_check.source_of(name, os.environ, file_keys)
            return source if source.startswith("MAILGATE_") else f"{source} in {config_file}"

        raise ConfigError(_describe(exc, where)) from None
    return settings


class _SettingsWithFile(Settings):
    """Settings where the environment still overrides values from the config file."""

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: Any, init_settings: Any, env_settings: Any, *args: Any, **kwargs: Any
    ) -> tuple[Any, ...]:
        return (env_settings, init_settings)
