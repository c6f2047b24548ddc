"""Settings: environment and TOML file, validated once with one clear message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import cli_env

from worker.errors import ConfigError
from worker.runtime import reply_secret
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
    first = reply_secret(settings)
    assert first == reply_secret(settings) and len(first) == 64
    assert (tmp_path / "var" / "reply-secret").stat().st_mode & 0o777 == 0o600


def _env_example(name: str) -> str:
    example = Path(__file__).parent.parent / "deploy" / "env.example"
    for line in example.read_text(encoding="utf-8").splitlines():
        if line.startswith(f"{name}="):
            return line.split("=", 1)[1]
    raise AssertionError(f"{name} not in deploy/env.example")


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("reply_secret", "x" * 31, "at least 32"),
        ("reply_secret", _env_example("MAILGATE_REPLY_SECRET"), "placeholder"),
        ("reply_secret", "change-me-to-a-long-random-string", "placeholder"),
        ("api_token", "y" * 23, "at least 24"),
        ("api_token", _env_example("MAILGATE_API_TOKEN"), "placeholder"),
    ],
)
def test_weak_secrets_stop_start_up(name: str, value: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=f"MAILGATE_{name.upper()}: .*{problem}"):
        load_settings(**{name: value})


def test_secrets_of_the_minimum_length_are_taken() -> None:
    settings = load_settings(reply_secret="s" * 32, api_token="t" * 24)
    assert reply_secret(settings) == b"s" * 32 and settings.api_token == "t" * 24


def test_secret_files_are_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret, token = tmp_path / "secret", tmp_path / "token"
    secret.write_text("r" * 40 + "\n")
    token.write_text("a" * 30 + "\n")
    monkeypatch.setenv("MAILGATE_REPLY_SECRET_FILE", str(secret))
    monkeypatch.setenv("MAILGATE_API_TOKEN_FILE", str(token))
    settings = load_settings()
    secret.write_text("changed afterwards" * 3)
    assert reply_secret(settings) == b"r" * 40 and settings.api_token == "a" * 30
    token.write_text("short")
    with pytest.raises(ConfigError, match="MAILGATE_API_TOKEN: 5 characters"):
        load_settings()
    monkeypatch.setenv("MAILGATE_API_TOKEN_FILE", str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="MAILGATE_API_TOKEN_FILE: cannot read"):
        load_settings()


def test_generated_secret_is_private_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o022)
    try:
        reply_secret(load_settings(data_dir=tmp_path / "var", reply_secret=None))
    finally:
        os.umask(previous)
    assert (tmp_path / "var" / "reply-secret").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "var").stat().st_mode & 0o777 == 0o700


def test_placeholder_secret_stops_serve_with_one_line(tmp_path: Path) -> None:
    env = cli_env(
        str(tmp_path / "var"),
        MAILGATE_REPLY_SECRET=_env_example("MAILGATE_REPLY_SECRET"),
        MAILGATE_SMTP_LISTEN="127.0.0.1:0",
    )
    result = subprocess.run(
        [sys.executable, "-m", "worker", "serve"], env=env, capture_output=True, timeout=120
    )
    lines = result.stderr.decode().strip().splitlines()
    assert result.returncode == 78
    assert len(lines) == 1 and "MAILGATE_REPLY_SECRET" in lines[0], lines
    assert not (tmp_path / "var").exists(), "stopped before touching the data dir"
