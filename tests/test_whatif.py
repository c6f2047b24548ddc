"""``mailgate whatif``: mail decided under the 2022 policy, decided again under 2018's, shows
the Customer Care language rejections turning into accepts, and writes nothing."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections import Counter
from pathlib import Path

from helpers import (
    POLICIES,
    add_standard_tickets,
    cli_env,
    envelope,
    fixture_bytes,
    make_settings,
)
from helpers import with_headers as edited
from test_audit import mailgate

from worker.pipeline import Mailgate
from worker.whatif import Matrix, render_html


def decided_under_2022(gate: Mailgate) -> dict[str, list[str]]:
    """Two Italian Customer Care follow-ups, their redelivery, an English one, a new ticket."""
    italian = fixture_bytes("followup_customer_care_it.eml")
    english = fixture_bytes("followup_customer_care_en.eml")
    carla = envelope("carla@customer.example")
    ids: dict[str, list[str]] = {}
    messages = [
        italian,
        edited(italian, Message_ID="<it-2@mail.customer.example>"),
        italian,
        english,
        fixture_bytes("new_ticket.eml"),
    ]
    for raw in messages:
        decision = gate.ingest(raw, carla)
        ids.setdefault(decision.decision, []).append(decision.public_id or "")
    return ids


def file_digest(database: Path) -> str:
    # Everything committed into the main file first, so the digest covers all of it.
    with sqlite3.connect(database) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return hashlib.sha256(database.read_bytes()).hexdigest()


def test_2018_policy_turns_language_rejections_into_accepts_and_writes_nothing(
    tmp_path: Path,
) -> None:
    """Both Italian follow-ups move rejected_language → accepted_followup, with their ids as
    the examples; the rest stays; the SQLite file's digest is the same afterwards."""
    gate = Mailgate.open(make_settings(tmp_path))
    add_standard_tickets(gate)
    ids = decided_under_2022(gate)
    assert len(ids["rejected_language"]) == 2, ids
    gate.engine.dispose()
    database = tmp_path / "var" / "mailgate.db"
    before = file_digest(database)
    # A real process: whatif forks its workers, which the test runner had better not be.
    result = mailgate(
        "whatif", "--policy", str(POLICIES / "wildix-2018-06.toml"), "--format", "json",
        env=cli_env(tmp_path / "var"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert file_digest(database) == before, "whatif changed the database"
    report = json.loads(result.stdout)
    cells = {(c["old"], c["new"]): c for c in report["cells"]}
    turned = cells[("rejected_language", "accepted_followup")]
    assert turned["count"] == 2 and sorted(turned["examples"]) == sorted(ids["rejected_language"])
    assert cells[("duplicate", "duplicate")]["count"] == 1
    assert cells[("accepted_followup", "accepted_followup")]["count"] == 1
    assert cells[("rejected_new_ticket", "rejected_new_ticket")]["count"] == 1
    assert report["total"] == 5 and report["changed"] == 2
    assert report["policy"] == "wildix-2018-06"
    page = render_html(_matrix(report))
    assert "<script" not in page and "http" not in page.split("</title>", 1)[1]
    assert 'data-old="rejected_language" data-new="accepted_followup">2<br>' in page


def _matrix(report: dict[str, object]) -> Matrix:
    matrix = Matrix(str(report["policy"]), str(report["policy_sha256"]), None, None)
    for cell in report["cells"]:  # type: ignore[attr-defined]
        matrix.cells += Counter({(cell["old"], cell["new"]): cell["count"]})
        matrix.examples[(cell["old"], cell["new"])] = cell["examples"]
    return matrix
