"""What ``mailgate serve`` leaves behind: logs without customer data, private files.

Both run the real command in a subprocess and look at every byte it wrote and every file
it created, because that is what an operator (or anyone with read access to the logs or
the disk) gets to see.
"""

from __future__ import annotations

import json
import os
import signal
import smtplib
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest
from helpers import cli_env, fixture_bytes, with_headers

MARKER = b"zq-privacy-marker-7f3a9c"
SENDER = "marker.sender-7f3a9c@customer.example"


class Serve:
    """``mailgate serve`` with everything it writes to stdout and stderr kept."""

    def __init__(self, env: dict[str, str], cwd: Path, umask: int | None = None) -> None:
        self.output: dict[str, bytearray] = {"stdout": bytearray(), "stderr": bytearray()}
        self.lines: list[dict[str, Any]] = []
        self.changed = threading.Condition()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "worker", "serve"],
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=(lambda: os.umask(umask)) if umask is not None else None,
        )
        assert self.process.stdout is not None and self.process.stderr is not None
        self.readers = [
            threading.Thread(target=self._read, args=(name, stream), daemon=True)
            for name, stream in (("stdout", self.process.stdout), ("stderr", self.process.stderr))
        ]
        for reader in self.readers:
            reader.start()

    def _read(self, name: str, stream: IO[bytes]) -> None:
        for line in stream:
            with self.changed:
                self.output[name] += line
                try:
                    self.lines.append(json.loads(line))
                except ValueError:
                    self.lines.append({"unparsed": line.decode("utf-8", "replace")})
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def event(self, name: str, timeout: float = 60) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            return next((line for line in self.lines if line.get("event") == name), None)

        with self.changed:
            self.changed.wait_for(
                lambda: found() is not None or self.process.poll() is not None, timeout
            )
            record = found()
        assert record is not None, f"{name} never logged: {bytes(self.output['stderr'])!r}"
        return record

    @property
    def smtp_port(self) -> int:
        url = next(u for u in self.event("mailgate_started")["listening"] if u.startswith("smtp"))
        return int(url.rsplit(":", 1)[1])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for reader in self.readers:
            reader.join(timeout=30)


@pytest.fixture
def serve_env(tmp_path: Path) -> dict[str, str]:
    return cli_env(
        str(tmp_path / "var"),
        MAILGATE_SMTP_LISTEN="127.0.0.1:0",
        MAILGATE_LOG_LEVEL="debug",
    )


def deliver(port: int, raw: bytes) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
        smtp.ehlo()
        smtp.mail(SENDER)
        smtp.rcpt("support@wildix.com")
        return smtp.data(raw)


def bogus_command(port: int) -> None:
    """A client line aiosmtpd does not know, carrying the address: it logs such lines."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        reader = sock.makefile("rb")
        reader.readline()
        sock.sendall(f"XSPY {SENDER} {MARKER.decode()}\r\n".encode())
        assert reader.readline().startswith(b"500 5.5.2")
        sock.sendall(b"QUIT\r\n")
        reader.readline()


@pytest.fixture
def served(serve_env: dict[str, str], tmp_path: Path) -> Iterator[Serve]:
    serve_env["MAILGATE_DB_BUSY_TIMEOUT"] = "0.5"
    running = Serve(serve_env, tmp_path)
    yield running
    running.stop()


def test_database_failure_leaves_no_message_data_in_any_output(
    served: Serve, tmp_path: Path
) -> None:
    port = served.smtp_port
    raw = with_headers(fixture_bytes("new_ticket.eml"), From=f"<{SENDER}>")
    raw = raw.replace(b"my PBX", MARKER + b" my PBX") + b"\r\n" + MARKER + b"\r\n"
    blocker = sqlite3.connect(tmp_path / "var" / "mailgate.db", isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # the database fails every write
    try:
        code, _ = deliver(port, raw)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert code == 451
    bogus_command(port)
    assert deliver(port, raw)[0] == 250
    served.event("decision")
    served.stop()
    failure = served.event("ingest_failed")
    frames = failure["exception"][0]["frames"]
    assert frames and all(set(frame) <= {"filename", "lineno", "name"} for frame in frames)
    everything = bytes(served.output["stdout"] + served.output["stderr"])
    assert MARKER not in everything
    assert b"database is locked" in everything, "the failure itself is still explained"
    naming = [line for line in served.lines if SENDER in json.dumps(line)]
    assert [line.get("event") for line in naming] == ["decision"]


def test_files_are_private_whatever_the_umask(serve_env: dict[str, str], tmp_path: Path) -> None:
    data = tmp_path / "var"
    (data / "outbox").mkdir(parents=True)
    data.chmod(0o755)
    (data / "outbox").chmod(0o755)
    stale = data / "outbox" / "0000000099.eml"
    stale.write_bytes(b"From: an older version\r\n\r\nreply\r\n")
    stale.chmod(0o644)  # an install made before files were private
    del serve_env["MAILGATE_REPLY_SECRET"]  # the generated one is checked too
    running = Serve(serve_env, tmp_path, umask=0o022)
    try:
        port = running.smtp_port
        assert deliver(port, fixture_bytes("new_ticket.eml"))[0] == 250
        running.event("decision")
        names = {path.name for path in data.rglob("*")}
        assert {"mailgate.db", "mailgate.db-wal", "mailgate.db-shm", "reply-secret"} <= names
        assert len(list((data / "outbox").glob("*.eml"))) == 2
        modes = {
            str(path.relative_to(tmp_path)): path.stat().st_mode & 0o777
            for path in [data, *data.rglob("*")]
        }
    finally:
        running.stop()
    expected = {name: 0o700 if (tmp_path / name).is_dir() else 0o600 for name in modes}
    assert modes == expected
    tightened = [line for line in running.lines if line.get("event") == "data_dir_tightened"]
    assert len(tightened) == 1 and tightened[0]["paths"] == 3
