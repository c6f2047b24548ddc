"""Spooling replies to files: no database lock held while the files are written, and two
spoolers of one directory never write the same row, also when one of them dies."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from helpers import envelope, fixture_bytes, with_headers
from sqlalchemy import text
from sqlmodel import Session, select

from worker import outbox
from worker.pipeline import Mailgate
from worker.store.db import make_engine
from worker.store.models import OutboxRow


def queue_replies(gate: Mailgate, count: int) -> list[int]:
    """``count`` committed replies left queued (nothing spools them yet)."""
    gate.settings.relay_url = "smtp://127.0.0.1:9"  # the gate leaves them to a dispatcher
    ids = []
    for number in range(count):
        raw = with_headers(
            fixture_bytes("new_ticket.eml"),
            Message_ID=f"<spool-{number}@customer.example>",
            From=f"c{number}@customer.example",
        )
        ids += gate.ingest(raw, envelope(f"c{number}@customer.example")).outbox_ids
    gate.settings.relay_url = None
    return ids


def statuses(gate: Mailgate) -> list[str]:
    with Session(gate.engine) as session:
        return [row.status for row in session.scalars(select(OutboxRow))]


def test_files_are_written_with_no_write_lock_held(
    gate: Mailgate, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue_replies(gate, 2)
    other = make_engine(str(gate.engine.url), busy_timeout=0.05)
    committed: list[bool] = []
    real = outbox._write

    def write_while_another_commits(directory: Path, row: object) -> None:
        # Another writer commits while the file is written: a spooler holding the write
        # transaction (as before) made this wait, and with a 50 ms budget, fail.
        with other.begin() as connection:
            connection.execute(text("UPDATE chain_head SET seq = seq WHERE id = 1"))
        committed.append(True)
        real(directory, row)

    monkeypatch.setattr(outbox, "_write", write_while_another_commits)
    assert outbox.spool_pending(gate.engine, gate.settings.outbox_dir) == 2
    other.dispose()
    assert committed == [True, True]
    assert statuses(gate) == ["spooled", "spooled"]


def test_racing_spoolers_write_each_row_once(gate: Mailgate) -> None:
    ids = queue_replies(gate, 12)
    written: list[int] = []
    start = threading.Barrier(4)

    def spooler() -> None:
        start.wait()
        written.append(outbox.spool_pending(gate.engine, gate.settings.outbox_dir))

    threads = [threading.Thread(target=spooler) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(written) == len(ids) == 12, written
    assert sorted(p.name for p in gate.settings.outbox_dir.glob("*.eml")) == [
        f"{row_id:010d}.eml" for row_id in sorted(ids)
    ]
    assert set(statuses(gate)) == {"spooled"}


def test_a_spooler_that_dies_lets_the_next_one_spool(gate: Mailgate) -> None:
    queue_replies(gate, 3)
    directory = gate.settings.outbox_dir
    assert outbox.spool_pending(gate.engine, directory, ids=[]) == 0  # creates the lock file
    lock = directory.with_name("outbox.lock")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time\n"
            f"handle = open({str(lock)!r}, 'a+b')\n"
            "fcntl.flock(handle, fcntl.LOCK_EX)\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    # The turn is taken: no other spooler writes.
    with open(lock, "a+b") as probe, pytest.raises(BlockingIOError):
        fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
    holder.kill()  # a spooler dies mid-round
    holder.wait()
    assert outbox.spool_pending(gate.engine, directory) == 3
    assert set(statuses(gate)) == {"spooled"}
    assert oct(os.stat(lock).st_mode & 0o777) == "0o600"
