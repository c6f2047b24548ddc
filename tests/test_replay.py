"""`mailgate replay`: an archive decided under the policy of each message's own date."""

from __future__ import annotations

import mailbox
import subprocess
import sys
from pathlib import Path

from helpers import FIXTURES, cli_env, with_headers
from sqlmodel import Session, select

from worker.store.models import DecisionRow


def build_mbox(path: Path) -> None:
    archive = mailbox.mbox(path)
    new_ticket = (FIXTURES / "new_ticket.eml").read_bytes()
    italian = (FIXTURES / "followup_customer_care_it.eml").read_bytes()
    archive.add(
        with_headers(
            new_ticket,
            Message_ID="<r2017@x.example>",
            Received="",
            Date="Tue, 14 Mar 2017 10:00:00 +0000",
        )
    )
    archive.add(
        with_headers(
            new_ticket,
            Message_ID="<r2020@x.example>",
            Received="from a by b; Wed, 15 Jan 2020 09:00:00 +0100",
            Date="Wed, 15 Jan 2020 08:59:00 +0100",
        )
    )
    archive.add(
        with_headers(
            italian, Message_ID="<r2023@x.example>", Date="Thu, 02 Mar 2023 11:00:00 +0100"
        )
    )
    archive.add(
        with_headers(
            italian, Message_ID="<r2021@x.example>", Date="Mon, 01 Mar 2021 11:00:00 +0100"
        )
    )
    archive.flush()
    archive.close()


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = cli_env(str(tmp_path / "var"))
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )


def recorded(tmp_path: Path) -> dict[str, tuple[str, str | None, str]]:
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{tmp_path / 'var' / 'mailgate.db'}")
    with Session(engine) as session:
        rows = session.scalars(select(DecisionRow)).all()
        return {r.message_id or "": (r.decision, r.policy, r.channel) for r in rows}


def test_replay_decides_each_message_under_its_own_policy(tmp_path: Path) -> None:
    archive = tmp_path / "support.mbox"
    build_mbox(archive)
    assert (
        run(
            tmp_path,
            "tickets",
            "add",
            "2002",
            "--kind",
            "customer_care",
            "--participant",
            "carla@customer.example",
        ).returncode
        == 0
    )
    dry = run(tmp_path, "replay", str(archive), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run" in dry.stdout and "total" in dry.stdout
    assert recorded(tmp_path) == {}, "--dry-run writes nothing"
    result = run(tmp_path, "replay", str(archive))
    assert result.returncode == 0, result.stderr
    assert recorded(tmp_path) == {
        "<r2017@x.example>": ("quarantined", None, "replay"),
        "<r2020@x.example>": ("rejected_new_ticket", "wildix-2018-06", "replay"),
        "<r2021@x.example>": ("accepted_followup", "wildix-2018-06", "replay"),
        "<r2023@x.example>": ("rejected_language", "wildix-2022-04", "replay"),
    }
    assert not (tmp_path / "var" / "outbox").exists() or not any(
        (tmp_path / "var" / "outbox").iterdir()
    ), "a replay never sends a reply"
    again = run(tmp_path, "replay", str(archive))
    assert "duplicate" in again.stdout


def test_replay_of_a_maildir(tmp_path: Path) -> None:
    folder = mailbox.Maildir(tmp_path / "Maildir")
    folder.add((FIXTURES / "dsn.eml").read_bytes())
    folder.close()
    result = run(tmp_path, "replay", str(tmp_path / "Maildir"))
    assert result.returncode == 0, result.stderr
    assert recorded(tmp_path)["<dsn-1@mx.customer.example>"][0] == "ignored_auto_generated"


def test_replay_of_something_else_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "empty-dir").mkdir()
    result = run(tmp_path, "replay", str(tmp_path / "empty-dir"))
    assert result.returncode == 65 and "not a Maildir" in result.stderr
    assert "Traceback" not in result.stderr
