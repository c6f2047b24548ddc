"""Faults from outside: storage locked, disk full, PostgreSQL restarted. Each gives the
documented answer (451 over SMTP, exit 75 from the pipe) and mailgate recovers without
being restarted."""

from __future__ import annotations

import contextlib
import os
import smtplib
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import (
    FIXTURES,
    RunningServer,
    cli_env,
    fixture_bytes,
    make_settings,
    reset_postgres,
    with_headers,
)
from sqlmodel import Session, select

from worker.pipeline import Mailgate
from worker.store.models import DecisionRow


def deliver(running: RunningServer, raw: bytes) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", running.port("smtp"), timeout=60) as smtp:
        smtp.ehlo()
        smtp.mail("alice@customer.example")
        smtp.rcpt("support@wildix.com")
        return smtp.data(raw)


def decided(gate: Mailgate) -> list[str]:
    with Session(gate.engine) as session:
        return [r.decision for r in session.scalars(select(DecisionRow)).all()]


def test_sqlite_locked_answers_451_then_recovers(tmp_path: Path) -> None:
    gate = Mailgate.open(
        make_settings(tmp_path, None, smtp_listen="127.0.0.1:0", db_busy_timeout=0.5)
    )
    running = RunningServer(gate)
    try:
        blocker = sqlite3.connect(tmp_path / "var" / "mailgate.db", isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # another process holds the write lock
        code, message = deliver(running, fixture_bytes("new_ticket.eml"))
        assert (code, message[:5]) == (451, b"4.3.0")
        blocker.execute("COMMIT")
        blocker.close()
        code, _ = deliver(running, fixture_bytes("new_ticket.eml"))
        assert code == 250
        assert decided(gate) == ["rejected_new_ticket"]
    finally:
        running.stop()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs of our own as the data dir (root only); unmounted afterwards."""
    mountpoint = tmp_path / "small"
    mountpoint.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


def test_data_dir_full_answers_451_then_recovers(small_disk: Path) -> None:
    gate = Mailgate.open(make_settings(small_disk, None, smtp_listen="127.0.0.1:0"))
    running = RunningServer(gate)
    filler = small_disk / "filler"
    try:
        with filler.open("wb", buffering=0) as handle, contextlib.suppress(OSError):
            while True:  # until the disk is full
                handle.write(b"\0" * 65536)
        raw = (
            with_headers(fixture_bytes("new_ticket.eml"), Message_ID="<full@x.example>")
            + (b"padding " * 10 + b"\r\n") * 400
            + b"\r\n"
        )
        code, message = deliver(running, raw)
        assert (code, message[:5]) == (451, b"4.3.0")
        filler.unlink()
        code, _ = deliver(running, raw)
        assert code == 250
        assert decided(gate) == ["rejected_new_ticket"]
    finally:
        running.stop()
        gate.engine.dispose()


def pg_cluster(action: str) -> None:
    version = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", action],
        check=True,
        capture_output=True,
        timeout=120,
    )


def test_postgres_restart_answers_451_and_75_then_recovers(
    tmp_path: Path, postgres_url: str
) -> None:
    if not Path("/etc/postgresql").is_dir():
        pytest.skip("no local PostgreSQL cluster to restart")
    reset_postgres(postgres_url)
    gate = Mailgate.open(make_settings(tmp_path, postgres_url, smtp_listen="127.0.0.1:0"))
    running = RunningServer(gate)
    env = cli_env(str(tmp_path / "var"), MAILGATE_DATABASE_URL=postgres_url)
    try:
        pg_cluster("stop")
        try:
            code, message = deliver(running, fixture_bytes("new_ticket.eml"))
            assert (code, message[:5]) == (451, b"4.3.0")
            pipe = subprocess.run(
                [sys.executable, "-m", "worker", "ingest", str(FIXTURES / "dsn.eml")],
                env=env,
                capture_output=True,
                timeout=120,
            )
            assert pipe.returncode == 75 and b"Traceback" not in pipe.stderr
        finally:
            pg_cluster("start")
        code, _ = deliver(running, fixture_bytes("new_ticket.eml"))
        assert code == 250, "the same process recovered, without a restart"
        assert decided(gate) == ["rejected_new_ticket"]
    finally:
        running.stop()
        gate.engine.dispose()
