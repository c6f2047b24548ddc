"""Named operators (``worker.operators``): the file, tokens by digest, roles, and the
``mailgate operators add`` / ``mailgate audit access`` / ``mailgate held`` commands."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import (
    add_standard_tickets,
    cli_env,
    envelope,
    fixture_bytes,
    make_settings,
    with_headers,
)

from worker.errors import ConfigError
from worker.operators import ADMIN_NAME, OperatorBook, Role, new_operator, token_digest
from worker.pipeline import Mailgate

ADMIN = "admin-token-0123456789abcdefghij"


def book(tmp_path: Path, text: str, api_token: str | None = ADMIN) -> OperatorBook:
    path = tmp_path / "operators.toml"
    path.write_text(text)
    return OperatorBook.from_settings(
        make_settings(tmp_path, operators_file=path, api_token=api_token)
    )


def test_tokens_find_their_operator_and_role(tmp_path: Path) -> None:
    token, table = new_operator("vera", Role.VIEWER)
    assert len(token) >= 24 and token not in table, "the token itself is never stored"
    found = book(tmp_path, table)
    vera = found.authenticate(token)
    assert vera is not None and (vera.name, vera.role) == ("vera", Role.VIEWER)
    admin = found.authenticate(ADMIN)
    assert admin is not None and (admin.name, admin.role) == (ADMIN_NAME, Role.ADMIN)
    assert found.authenticate(token + "x") is None
    assert vera.may(Role.VIEWER) and not vera.may(Role.OPERATOR) and admin.may(Role.OPERATOR)


@pytest.mark.parametrize(
    "text,problem",
    [
        ('[[operator]]\nname = "a"\nrole = "root"\ntoken_sha256 = "' + "0" * 64 + '"', "role"),
        ('[[operator]]\nname = "a"\nrole = "viewer"\ntoken_sha256 = "abc"', "token_sha256"),
        (
            '[[operator]]\nname = "admin"\nrole = "viewer"\ntoken_sha256 = "' + "1" * 64 + '"',
            "admin",
        ),
        ("[[operator]\n", "not valid TOML"),
        ('[[operators]]\nname = "a"', "operators"),
    ],
)
def test_a_bad_file_is_one_line_naming_it(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ConfigError) as error:
        book(tmp_path, text)
    message = str(error.value)
    assert message.startswith("bad setting MAILGATE_OPERATORS_FILE: ") and problem in message
    assert "\n" not in message


def test_cli_adds_an_operator_and_lists_content_reads(tmp_path: Path) -> None:
    """``operators add`` prints a token whose digest is the line's; ``held show`` is a
    content read that ``audit access`` lists (``held release``: tests/system/test_held_race)."""
    gate = Mailgate.open(make_settings(tmp_path))
    add_standard_tickets(gate)
    raw = with_headers(fixture_bytes("followup_subject_tag.eml"), From="dora@partner.example")
    held = gate.ingest(raw, envelope("dora@partner.example"))
    gate.engine.dispose()
    assert held.public_id is not None
    env = cli_env(tmp_path / "var")

    def mailgate(*arguments: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "worker", *arguments]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)

    added = mailgate("operators", "add", "olga", "--role", "operator")
    token = re.search(r"not stored\): (\S+)", added.stdout)
    assert added.returncode == 0 and token is not None
    digest = hashlib.sha256(token.group(1).encode()).hexdigest()
    assert f'token_sha256 = "{digest}"' in added.stdout and digest == token_digest(token.group(1))
    shown = mailgate("held", "show", held.public_id, "--operator", "olga")
    assert shown.returncode == 0 and "Subject: RE: AW: [Ticket#1001]" in shown.stdout
    listed = mailgate("audit", "access")
    assert f"olga  read message of {held.public_id}" in listed.stdout
