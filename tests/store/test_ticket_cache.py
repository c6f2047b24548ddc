"""The in-memory ticket directory: a change made anywhere is seen by the next decision.

Each change comes from outside the deciding gate: the ``mailgate tickets add`` command in
another process, a second gate on the same database (another replica), and plain SQL that
bypasses mailgate altogether. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

from helpers import cli_env, envelope, fixture_bytes, make_settings, with_headers
from sqlalchemy import text

from worker.pipeline import Mailgate
from worker.tickets import TicketRecord, upsert


def followup(gate: Mailgate, ticket: str = "1001", sender: str = "bob@partner.example") -> str:
    """A fresh follow-up on ``ticket`` from ``sender``; returns its decision (a held one
    with the rule that held it)."""
    raw = with_headers(
        fixture_bytes("followup_subject_tag.eml"),
        Subject=f"Re: [Ticket#{ticket}] handsets",
        **{"Message-ID": f"<{uuid.uuid4().hex}@partner.example>"},
    )
    decision = gate.ingest(raw, envelope(sender))
    return f"held:{decision.rule}" if decision.decision == "held" else decision.decision


def tickets_cli(tmp_path: Path, database_url: str, *arguments: str) -> None:
    env = cli_env(tmp_path / "cli-var", MAILGATE_DATABASE_URL=database_url)
    subprocess.run(
        [sys.executable, "-m", "worker", "tickets", "add", *arguments],
        env=env,
        check=True,
        capture_output=True,
    )


def test_an_unchanged_ticket_is_read_from_memory(gate: Mailgate) -> None:
    assert followup(gate) == "accepted_followup"
    reads = gate.tickets.reads
    assert followup(gate) == "accepted_followup"
    assert followup(gate) == "accepted_followup"
    assert gate.tickets.reads == reads
    assert gate.tickets.hits >= 2


def test_a_ticket_closed_by_the_cli_is_seen_by_the_next_decision(
    gate: Mailgate, database_url: str, tmp_path: Path
) -> None:
    assert followup(gate) == "accepted_followup"
    closed = ("--kind", "technical", "--participant", "bob@partner.example", "--status")
    tickets_cli(tmp_path, database_url, "1001", *closed, "closed",
                "--closed-at", "2025-01-01T00:00:00+00:00")  # fmt: skip
    assert followup(gate) == "rejected_closed_ticket"
    tickets_cli(tmp_path, database_url, "1001", *closed, "open")
    assert followup(gate) == "accepted_followup"


def test_a_ticket_changed_by_another_replica_is_seen(
    gate: Mailgate, database_url: str, tmp_path: Path
) -> None:
    """A second gate on the same database: a participant removed there, and a ticket that
    did not exist (and was remembered as missing) created there."""
    other = Mailgate.open(make_settings(tmp_path / "other", database_url))
    try:
        assert followup(gate) == "accepted_followup"
        assert followup(gate, ticket="4004") == "held:unknown_ticket"
        upsert(other.engine, [TicketRecord(id="1001", kind="technical")])
        upsert(
            other.engine,
            [TicketRecord(id="4004", kind="technical", participants=["bob@partner.example"])],
        )
        assert followup(gate) == "held:unauthorized_sender"
        assert followup(gate, ticket="4004") == "accepted_followup"
    finally:
        other.engine.dispose()


def test_a_ticket_changed_by_plain_sql_is_seen(gate: Mailgate) -> None:
    """The counter is bumped by triggers, so even a writer that is not mailgate counts."""
    assert followup(gate) == "accepted_followup"
    with gate.engine.begin() as connection:
        connection.execute(text("DELETE FROM ticket WHERE id = '1001'"))
    assert followup(gate) == "held:unknown_ticket"
