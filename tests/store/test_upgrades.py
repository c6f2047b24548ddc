"""Databases written by every earlier release are migrated, and their chain still verifies.

For each alembic revision the test builds the schema of the release that stood there
(``alembic upgrade REV``) and writes what that release wrote: raw messages, a ticket, two
chained decisions (the second a duplicate of the first), an outbox row and the chain head,
through SQLAlchemy's reflection of *that* schema (so columns a later release added are
simply absent, and a NOT NULL column a later release adds without a default fails here
first). Then it migrates to the head, checks ``audit verify``, reads the rows back and
decides one more message on top. ``mailgate migrate`` and the README's upgrade and
rollback steps (sqlite3 ``.backup``, ``migrate``, restore) run as an operator runs them.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from helpers import FIXTURES, cli_env, envelope, make_settings
from sqlalchemy import Engine, MetaData, Table, insert, update

from worker.audit import CHAINED_FIELDS, GENESIS, _digest, canonical
from worker.chain_store import verify_database
from worker.errors import ConfigError
from worker.pipeline import Mailgate
from worker.store.db import MIGRATIONS, make_engine, migrate
from worker.store.upgrade import current_revision


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def revisions() -> list[str]:
    """Every revision, oldest first (each one a schema some release wrote)."""
    script = ScriptDirectory.from_config(alembic_config())
    return [rev.revision for rev in reversed(list(script.walk_revisions()))]


HEAD = revisions()[-1]
PREVIOUS = revisions()[-2]
# Chain format 2 (migration 0008): from there on a decision links over its personal
# digest; every schema before it was written with format 1 links (write_as_release).
FORMAT_2 = "0008"
FORMAT_1_SCHEMAS = [revision for revision in revisions() if revision < FORMAT_2]


def schema_at(engine: Engine, revision: str) -> None:
    config = alembic_config()
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        connection.commit()


def write_as_release(engine: Engine) -> None:
    """Rows as the release at this schema wrote them, chained as it chained them."""
    tables = {
        name: Table(name, MetaData(), autoload_with=engine)
        for name in ("raw_message", "ticket", "decision", "outbox", "chain_head")
    }
    now = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
    raw = (FIXTURES / "new_ticket.eml").read_bytes()
    digest_of_raw = "a" * 64
    base = {
        # new_ticket.eml's: deciding it again after the upgrade must find this row.
        "dedup_key": "mid:<20261123091158.4711@mail.customer.example>",
        "decision": "rejected_new_ticket",
        "rule": "new_ticket",
        "policy": "wildix-2022-04",
        "policy_sha256": "b" * 64,
        "ticket": None,
        "reply_status": "queued",
        "reply_reason": "rejected_new_ticket",
        "message_id": "<20261123091158.4711@mail.customer.example>",
        "raw_sha256": digest_of_raw,
        "envelope_from": "alice@customer.example",
        "recipients": ["support@wildix.com"],
        "received_at": now,
        "decided_at": now + timedelta(seconds=1),
        "channel": "smtp",
        "trace": [{"rule": "new_ticket", "hit": True, "reason": "no ticket reference"}],
        "duplicate_of": None,
    }
    repeat = {**base, "dedup_key": None, "decision": "duplicate", "rule": "duplicate"}
    repeat |= {"reply_status": "suppressed", "reply_reason": "duplicate", "duplicate_of": 1}
    with engine.begin() as connection:
        connection.execute(
            insert(tables["raw_message"]),
            [{"sha256": digest_of_raw, "size": len(raw), "compressed": raw, "stored_at": now}],
        )
        connection.execute(
            insert(tables["ticket"]),
            [
                {
                    "id": "1001",
                    "kind": "technical",
                    "status": "open",
                    "participants": ["bob@partner.example"],
                    "domains": ["partner.example"],
                    "updated_at": now,
                }
            ],
        )
        prev = GENESIS
        for seq, fields in enumerate((base, repeat), start=1):
            digest = format1_digest(prev, {**fields, "seq": seq})
            row = {**fields, "id": seq, "seq": seq, "prev_digest": prev, "digest": digest}
            connection.execute(insert(tables["decision"]), [_only(tables["decision"], row)])
            prev = digest
        connection.execute(
            insert(tables["outbox"]),
            [_only(tables["outbox"], _outbox_row(now))],
        )
        connection.execute(update(tables["chain_head"]).values(seq=2, digest=prev))


def format1_digest(prev_digest: str, fields: dict[str, Any]) -> str:
    """How every release before chain format 2 (migration 0008) linked a decision: over
    each of its fields itself."""
    return _digest(prev_digest, {name: canonical(fields.get(name)) for name in CHAINED_FIELDS})


def _outbox_row(now: datetime) -> dict[str, Any]:
    return {
        "decision_id": 1,
        "kind": "auto_reply",
        "mail_from": "",
        "rcpt_to": "alice@customer.example",
        "message_id": "<reply-old@wildix.com>",
        "body": b"From: support@wildix.com\r\n\r\nopen a ticket in WMP\r\n",
        "status": "sent",
        "attempts": 1,
        "created_at": now,
        "next_attempt_at": now,
        "done_at": now,
    }


def _only(table: Table, row: dict[str, Any]) -> dict[str, Any]:
    """The values this schema has columns for (a later column is not written)."""
    return {name: value for name, value in row.items() if name in table.c}


def old_database(directory: Path, revision: str) -> Engine:
    engine = make_engine(f"sqlite:///{directory / 'var' / 'mailgate.db'}")
    schema_at(engine, revision)
    write_as_release(engine)
    return engine


@pytest.mark.parametrize("revision", FORMAT_1_SCHEMAS)
def test_database_of_each_release_is_migrated_and_verifies(tmp_path: Path, revision: str) -> None:
    """Migrated to the head: the chain verifies, the rows read back, and deciding goes on."""
    engine = old_database(tmp_path, revision)
    migrate(engine)
    assert current_revision(engine) == HEAD
    result, _ = verify_database(engine)
    assert result.ok and result.rows == 2, result.problem
    gate = Mailgate.open(make_settings(tmp_path))
    decided = gate.ingest(
        (FIXTURES / "new_ticket.eml").read_bytes(), envelope("alice@customer.example")
    )
    assert decided.decision == "duplicate"  # same Message-ID as the old release's decision
    result, _ = verify_database(gate.engine)
    assert result.ok and result.rows == 3, result.problem
    gate.engine.dispose()
    engine.dispose()


def test_database_of_a_newer_release_is_one_clear_line(tmp_path: Path) -> None:
    """A rollback without restoring the backup: refused by name, nothing changed."""
    engine = old_database(tmp_path, HEAD)
    with engine.begin() as connection:
        connection.exec_driver_sql("UPDATE alembic_version SET version_num = 'ffff'")
    with pytest.raises(ConfigError, match="schema ffff is newer than this release"):
        migrate(engine)
    engine.dispose()


def mailgate(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env=cli_env(tmp_path / "var"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_readme_upgrade_and_rollback(tmp_path: Path) -> None:
    """README "Upgrading": back up, `mailgate migrate`, `audit verify`; rolling back restores
    the backup, which the previous release finds at its own schema with its rows."""
    database = tmp_path / "var" / "mailgate.db"
    old_database(tmp_path, PREVIOUS).dispose()
    backup = tmp_path / "mailgate-before-upgrade.db"
    subprocess.run(["sqlite3", str(database), f".backup '{backup}'"], check=True, timeout=60)

    migrated = mailgate(tmp_path, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert f"from revision {PREVIOUS} to {HEAD}" in migrated.stdout
    verified = mailgate(tmp_path, "audit", "verify")
    assert verified.returncode == 0 and "intact: 2 decisions" in verified.stdout, verified

    for suffix in ("", "-wal", "-shm"):  # the service is stopped: no live WAL to keep
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    shutil.copy2(backup, database)
    with sqlite3.connect(database) as connection:
        [(version,)] = connection.execute("SELECT version_num FROM alembic_version").fetchall()
        rows = connection.execute("SELECT seq, digest, recipients FROM decision ORDER BY seq")
        restored = [(seq, digest, json.loads(recipients)) for seq, digest, recipients in rows]
    assert version == PREVIOUS
    assert [seq for seq, _, _ in restored] == [1, 2]
