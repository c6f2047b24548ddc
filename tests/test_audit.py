"""The decision hash chain: ``mailgate audit verify`` finds edits and deletions, by row."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import POLICIES, SECRET, envelope, fixture_bytes, with_headers
from sqlalchemy import text

from worker.pipeline import Mailgate


def run_verify(gate: Mailgate) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MAILGATE_DATA_DIR": str(gate.settings.data_dir),
        "MAILGATE_DATABASE_URL": gate.settings.effective_database_url,
        "MAILGATE_POLICY_DIR": str(POLICIES),
        "MAILGATE_REPLY_SECRET": SECRET,
    }
    return subprocess.run(
        [sys.executable, "-m", "worker", "audit", "verify"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


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
    with gate.engine.begin() as connection:
        connection.execute(
            text("DELETE FROM outbox WHERE decision_id IN (SELECT id FROM decision WHERE seq = 2)")
        )
        connection.execute(text("DELETE FROM decision WHERE seq = 2"))
    result = run_verify(gate)
    assert result.returncode == 1
    assert "decision seq 2 is missing" in result.stderr


def test_deleted_newest_row_is_detected(gate: Mailgate) -> None:
    """Deleting the newest row is caught by the chain head."""
    fill(gate)
    with gate.engine.begin() as connection:
        connection.execute(
            text("DELETE FROM outbox WHERE decision_id IN (SELECT id FROM decision WHERE seq = 5)")
        )
        connection.execute(text("DELETE FROM decision WHERE seq = 5"))
    result = run_verify(gate)
    assert result.returncode == 1
    assert "chain head says seq 5" in result.stderr


def test_renumbered_rows_are_detected(gate: Mailgate, tmp_path: Path) -> None:
    """Deleting a row and renumbering the rest cannot hide the gap."""
    fill(gate)
    with gate.engine.begin() as connection:
        connection.execute(
            text("DELETE FROM outbox WHERE decision_id IN (SELECT id FROM decision WHERE seq = 4)")
        )
        connection.execute(text("DELETE FROM decision WHERE seq = 4"))
        connection.execute(text("UPDATE decision SET seq = 4 WHERE seq = 5"))
        connection.execute(text("UPDATE chain_head SET seq = 4"))
    result = run_verify(gate)
    assert result.returncode == 1
    assert "decision seq 4" in result.stderr


def run_cli(gate: Mailgate, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "MAILGATE_DATA_DIR": str(gate.settings.data_dir),
        "MAILGATE_DATABASE_URL": gate.settings.effective_database_url,
        "MAILGATE_POLICY_DIR": str(POLICIES),
        "MAILGATE_REPLY_SECRET": SECRET,
    }
    return subprocess.run(
        [sys.executable, "-m", "worker", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_export_verifies_offline_and_detects_edits(gate: Mailgate, tmp_path: Path) -> None:
    """An auditor verifies the exported chain without the database; edits are named."""
    fill(gate)
    export = tmp_path / "chain.jsonl"
    result = run_cli(gate, "audit", "export", str(export))
    assert result.returncode == 0, result.stderr
    lines = export.read_text().splitlines()
    assert len(lines) == 6 and '"head"' in lines[-1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAILGATE_")}
    offline = subprocess.run(
        [sys.executable, "-m", "worker", "audit", "verify", "--export", str(export)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert offline.returncode == 0, offline.stderr
    assert "5 decisions" in offline.stdout
    lines[2] = lines[2].replace("rejected_new_ticket", "accepted_followup", 1)
    export.write_text("\n".join(lines) + "\n")
    tampered = subprocess.run(
        [sys.executable, "-m", "worker", "audit", "verify", "--export", str(export)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert tampered.returncode == 1 and "decision seq 3" in tampered.stderr
    truncated = tmp_path / "truncated.jsonl"
    truncated.write_text("\n".join(export.read_text().splitlines()[:3]) + "\n")
    cut = subprocess.run(
        [sys.executable, "-m", "worker", "audit", "verify", "--export", str(truncated)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert cut.returncode == 1 and "truncated" in cut.stderr
