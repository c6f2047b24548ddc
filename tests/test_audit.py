"""The decision hash chain: ``mailgate audit verify`` finds edits and deletions, by row."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from helpers import cli_env, envelope, fixture_bytes, with_headers
from sqlalchemy import text

from worker.pipeline import Mailgate


def mailgate(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args], capture_output=True, text=True, env=env, timeout=60
    )


def run_cli(gate: Mailgate, *args: str) -> subprocess.CompletedProcess[str]:
    """`mailgate` against the test's own store."""
    env = cli_env(
        gate.settings.data_dir, MAILGATE_DATABASE_URL=gate.settings.effective_database_url
    )
    return mailgate(*args, env=env)


def run_verify(gate: Mailgate) -> subprocess.CompletedProcess[str]:
    return run_cli(gate, "audit", "verify")


def delete_decision(gate: Mailgate, seq: int, *more: str) -> None:
    """Delete chain position ``seq`` (and its outbox rows), then run ``more`` statements."""
    with gate.engine.begin() as connection:
        connection.execute(
            text(
                "DELETE FROM outbox WHERE decision_id IN (SELECT id FROM decision WHERE seq = :s)"
            ),
            {"s": seq},
        )
        connection.execute(text("DELETE FROM decision WHERE seq = :s"), {"s": seq})
        for statement in more:
            connection.execute(text(statement))


def fill(gate: Mailgate, count: int = 5) -> None:
    for number in range(count):
        raw = with_headers(
            fixture_bytes("new_ticket.eml"), Message_ID=f"<chain-{number}@x.example>"
        )
        gate.ingest(raw, envelope("alice@customer.example"))


def test_intact_chain_verifies(gate: Mailgate) -> None:
    """An untouched log verifies and says how many decisions it covers."""
    fill(gate)
    result = run_verify(gate)
    assert result.returncode == 0, result.stderr
    assert "5 decisions" in result.stdout


@pytest.mark.parametrize(
    "column,value",
    [
        ("decision", "'accepted_followup'"),
        ("envelope_from", "'someone@else.example'"),
        ("reply_status", "'sent'"),
    ],
)
def test_edited_row_is_named(gate: Mailgate, column: str, value: str) -> None:
    """Editing any field of row 3 breaks the chain exactly there."""
    fill(gate)
    with gate.engine.begin() as connection:
        connection.execute(text(f"UPDATE decision SET {column} = {value} WHERE seq = 3"))
    result = run_verify(gate)
    assert result.returncode == 1
    assert "decision seq 3" in result.stderr and "edited" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_deleted_row_is_named(gate: Mailgate) -> None:
    """Deleting a row in the middle names the missing position."""
    fill(gate)
    delete_decision(gate, 2)
    result = run_verify(gate)
    assert result.returncode == 1
    assert "record seq 2 is missing" in result.stderr


def test_deleted_newest_row_is_detected(gate: Mailgate) -> None:
    """Deleting the newest row is caught by the chain head."""
    fill(gate)
    delete_decision(gate, 5)
    result = run_verify(gate)
    assert result.returncode == 1
    assert "chain head says seq 5" in result.stderr


def test_renumbered_rows_are_detected(gate: Mailgate, tmp_path: Path) -> None:
    """Deleting a row and renumbering the rest cannot hide the gap."""
    fill(gate)
    delete_decision(
        gate, 4, "UPDATE decision SET seq = 4 WHERE seq = 5", "UPDATE chain_head SET seq = 4"
    )
    result = run_verify(gate)
    assert result.returncode == 1
    assert "decision seq 4" in result.stderr


def test_export_verifies_offline_and_detects_edits(gate: Mailgate, tmp_path: Path) -> None:
    """An auditor verifies the exported chain without the database; edits are named."""
    fill(gate)
    export = tmp_path / "chain.jsonl"
    result = run_cli(gate, "audit", "export", str(export))
    assert result.returncode == 0, result.stderr
    lines = export.read_text().splitlines()
    assert len(lines) == 6 and '"head"' in lines[-1]
    env = cli_env(tmp_path / "elsewhere")  # no database: the export alone
    offline = mailgate("audit", "verify", "--export", str(export), env=env)
    assert offline.returncode == 0, offline.stderr
    assert "5 decisions" in offline.stdout
    lines[2] = lines[2].replace("rejected_new_ticket", "accepted_followup", 1)
    export.write_text("\n".join(lines) + "\n")
    tampered = mailgate("audit", "verify", "--export", str(export), env=env)
    assert tampered.returncode == 1 and "decision seq 3" in tampered.stderr
    truncated = tmp_path / "truncated.jsonl"
    truncated.write_text("\n".join(export.read_text().splitlines()[:3]) + "\n")
    cut = mailgate("audit", "verify", "--export", str(truncated), env=env)
    assert cut.returncode == 1 and "truncated" in cut.stderr
