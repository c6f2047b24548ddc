"""Settings: environment and TOML file, validated once with one clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.errors import ConfigError
from worker.settings import load_settings


def test_defaults_are_the_embedded_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MAILGATE_DATA_DIR", "MAILGATE_DATABASE_URL", "MAILGATE_SMTP_LISTEN"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.effective_database_url.startswith("sqlite:///")
    assert settings.listen_address("smtp") == ("127.0.0.1", 2525)
    assert settings.listen_address("lmtp") is None
    assert settings.max_message_bytes == 25 * 1024 * 1024


def test_support_domains_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILGATE_SUPPORT_DOMAINS", "Support.Example.com, help.example.org")
    assert load_settings().support_domains == ["support.example.com", "help.example.org"]
    monkeypatch.setenv("MAILGATE_SUPPORT_DOMAINS", "single.example")
    assert load_settings().support_domains == ["single.example"]


def test_config_file_with_environment_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "mailgate.toml"
    config.write_text('reject_mode = "smtp"\nmax_message_bytes = 1000\n')
    monkeypatch.setenv("MAILGATE_MAX_MESSAGE_BYTES", "2000")
    settings = load_settings(config)
    assert settings.reject_mode == "smtp" and settings.max_message_bytes == 2000


def test_unknown_key_in_config_file(tmp_path: Path) -> None:
    config = tmp_path / "mailgate.toml"
    config.write_text("smpt_listen = '127.0.0.1:25'\n")
    with pytest.raises(ConfigError, match="unknown setting MAILGATE_SMPT_LISTEN"):
        load_settings(config)


def test_postgres_url_gets_the_psycopg_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAILGATE_DATABASE_URL", "postgresql://u@h/db")
    assert load_settings().effective_database_url == "postgresql+psycopg://u@h/db"


def test_generated_reply_secret_is_stable(tmp_path: Path) -> None:
    settings = load_settings(data_dir=tmp_path / "var", reply_secret=None)
    first = settings.resolved_reply_secret()
    assert first == settings.resolved_reply_secret() and len(first) == 64
    assert (tmp_path / "var" / "reply-secret").stat().st_mode & 0o777 == 0o600
