"""``mailgate erase``: the person is gone from every table, file and export; the chain and the
report's counts hold, for rows written now and by the release before chain format 2."""

from __future__ import annotations

import base64
import json
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cli_inprocess import invoke
from helpers import (
    envelope,
    fixture_bytes,
    make_settings,
    outbox_files,
    with_headers,
)

from worker.chain_store import verify_database
from worker.pipeline import Mailgate
from worker.report import build_report
from worker.tickets import TicketRecord, upsert

ERIN = "erin.forget@customer.example"
# Rows (raw messages, decisions, reply ledger, chain head) written by mailgate at commit
# cdbd064, the release before chain format 2: two decisions of Erin's (one a duplicate) and
# one of Dan's, with their format-1 links.
FIXTURE = Path(__file__).parent / "fixtures" / "chain_format1.json"


def database_dump(gate: Mailgate) -> bytes:
    """Every row of the database as text: ``pg_dump``, or SQLite's own ``.dump``."""
    url = gate.engine.url
    if url.get_backend_name() == "postgresql":
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        return subprocess.run(["pg_dump", dsn], capture_output=True, check=True, timeout=60).stdout
    with sqlite3.connect(str(url.database)) as connection:
        return "\n".join(connection.iterdump()).encode()


def mentions(gate: Mailgate, needle: str) -> list[str]:
    """Where ``needle`` (any case) still is: files under the data dir, and the dump."""
    found = [
        str(path)
        for path in gate.settings.data_dir.rglob("*")
        if path.is_file() and needle.encode() in path.read_bytes().lower()
    ]
    if needle.encode() in database_dump(gate).lower():
        found.append("database dump")
    return found


def erin_writes(gate: Mailgate) -> None:
    """Erin: a new-ticket mail (a reply is spooled to her), a follow-up, a redelivery;
    Dan writes too; Erin is a participant of ticket 4004."""
    upsert(gate.engine, [TicketRecord(id="4004", kind="technical", participants=[ERIN])])
    new = fixture_bytes("new_ticket.eml")
    first = with_headers(new, Message_ID="<e-1@mua.example>", From=f"Erin <{ERIN}>")
    gate.ingest(first, envelope(ERIN))
    follow = with_headers(
        new, Message_ID="<e-2@mua.example>", From=f"Erin <{ERIN}>", Subject="[#4004] more"
    )
    gate.ingest(follow, envelope("bounces+x@list.example"))  # Erin only in the header
    gate.ingest(first, envelope(ERIN))  # redelivered: a duplicate
    dan = with_headers(new, Message_ID="<d-1@mua.example>", From="Dan <dan@other.example>")
    gate.ingest(dan, envelope("dan@other.example"))


def counts(gate: Mailgate) -> dict[str, Any]:
    report = build_report(gate.read_engine, None, None).as_dict()
    report.pop("since"), report.pop("until")
    # Ties among the top domains come in the database's row order, which updates change.
    report["top_rejected_sender_domains"] = sorted(report["top_rejected_sender_domains"])
    return report


def test_erased_address_is_nowhere_and_the_chain_still_verifies(gate: Mailgate) -> None:
    """After ``erase`` the address is in no table, file, dump or export; verify and the
    report's counts are as before, and the erasure is a chain record without the address."""
    erin_writes(gate)
    assert outbox_files(gate), "Erin's reply was spooled"
    assert verify_database(gate.engine)[0].ok
    before = counts(gate)
    result = invoke(gate, "erase", "--address", ERIN.upper(), "--operator", "dpo")
    assert result.returncode == 0, result.stderr
    assert "erased 3 decisions" in result.stdout, result.stdout
    assert ERIN not in (result.stdout + result.stderr).lower()
    assert mentions(gate, ERIN) == []
    assert mentions(gate, "dan@other.example"), "only Erin was erased"
    verified = invoke(gate, "audit", "verify")
    assert verified.returncode == 0, verified.stderr
    assert "erased: 3 decisions" in verified.stdout
    assert counts(gate) == before
    export = gate.settings.data_dir.parent / "export.jsonl"
    assert invoke(gate, "audit", "export", str(export)).returncode == 0
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    assert ERIN not in export.read_text().lower()
    offline = invoke(gate, "audit", "verify", "--export", str(export))
    assert offline.returncode == 0 and "erased: 3 decisions" in offline.stdout, offline.stderr
    erasure = [r["event"] for r in lines if r.get("event", {}).get("kind") == "erasure"]
    assert erasure[0]["body"]["operator"] == "dpo" and erasure[0]["body"]["decisions"] == 3


def test_emptying_personal_fields_without_an_erasure_record_is_caught(gate: Mailgate) -> None:
    """Dropping a row's salt and fields by hand does not pass for an erasure."""
    erin_writes(gate)
    with gate.engine.begin() as connection:
        connection.execute(
            sa.text("UPDATE decision SET personal_salt = NULL, envelope_from = 'x@y' WHERE seq = 4")
        )
    result, _ = verify_database(gate.engine)
    assert not result.ok and "decision seq 4" in (result.problem or "")


def _load_format1(url: str) -> None:
    """A database at schema 0005 holding rows the release before format 2 wrote."""
    from alembic import command
    from alembic.config import Config

    from worker.store.db import MIGRATIONS, make_engine

    engine = make_engine(url)
    if engine.dialect.name == "postgresql":  # the session's database is at head: start over
        with engine.begin() as connection:
            connection.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    data = json.loads(FIXTURE.read_text())
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0005")
        connection.commit()
        metadata = sa.MetaData()
        for name in ("raw_message", "decision", "reply_ledger"):
            table = sa.Table(name, metadata, autoload_with=connection)
            connection.execute(table.insert(), [_row(row) for row in data[name]])
        head = data["chain_head"][0]
        connection.execute(
            sa.text("UPDATE chain_head SET seq = :seq, digest = :digest"),
            {"seq": head["seq"], "digest": head["digest"]},
        )
        connection.commit()
    engine.dispose()


def _row(row: dict[str, Any]) -> dict[str, Any]:
    from datetime import datetime

    values = {}
    for key, value in row.items():
        if isinstance(value, dict) and "b64" in value:
            value = base64.b64decode(value["b64"])
        elif key in ("recipients", "trace") and isinstance(value, str):
            value = json.loads(value)
        elif key.endswith("_at") and isinstance(value, str):
            value = datetime.fromisoformat(value)
        values[key] = value
    return values


def test_rows_of_the_previous_release_are_relinked_and_erasable(
    tmp_path: Path, database_url: str
) -> None:
    """Format-1 rows verify after migration 0008 (a relink record keeps the old head) and
    still verify after erasing the person in them."""
    _load_format1(database_url)
    gate = Mailgate.open(make_settings(tmp_path, database_url))
    try:
        result, _ = verify_database(gate.engine)
        assert result.ok and result.rows == 3, result.problem
        with gate.engine.connect() as connection:
            body = connection.execute(sa.text("SELECT body FROM chain_event")).scalar_one()
        relink = json.loads(body) if isinstance(body, str) else body
        assert relink["format1_verified"] is True and relink["rows"] == 3
        erased = invoke(gate, "erase", "--address", ERIN)
        assert erased.returncode == 0 and "erased 2 decisions" in erased.stdout, erased.stderr
        after, _ = verify_database(gate.engine)
        assert after.ok and after.erased == 2, after.problem
        assert mentions(gate, ERIN) == []
    finally:
        gate.engine.dispose()


def test_an_export_taken_before_format_2_still_verifies_offline() -> None:
    """An auditor's export from the earlier release verifies under its own format; an edit
    in it is still named."""
    from worker.audit import verify_export

    data = json.loads(FIXTURE.read_text())
    rows = []
    for row in data["decision"]:
        record = _row(row)
        for key in ("received_at", "decided_at"):
            record[key] = record[key].isoformat(timespec="microseconds") + "+00:00"
        rows.append(json.dumps(record, default=str))
    head = data["chain_head"][0]
    lines = [*rows, json.dumps({"head": {"seq": head["seq"], "digest": head["digest"]}})]
    assert verify_export(lines).ok
    lines[1] = lines[1].replace("rejected_new_ticket", "accepted_followup", 1)
    edited = verify_export(lines)
    assert not edited.ok and "decision seq 2" in (edited.problem or "")
