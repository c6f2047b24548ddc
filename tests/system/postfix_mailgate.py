"""mailgate as the Postfix tests run it: a ``serve`` or ``dispatch`` process, its decisions.

A process is started with the settings of a test, its start-up line is read for the ports
it really bound, and SIGTERM stops it. For the pipe transport, ``service_python`` finds an
interpreter the unprivileged test user can execute: a venv whose Python lives in root's
home (pyenv) cannot be run by another user, exactly the trap operators fall into.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

from helpers import ROOT, cli_env


class MailgateProcess:
    """``mailgate <command>`` in a subprocess, optionally as another user."""

    def __init__(
        self,
        data_dir: Path,
        command: tuple[str, ...] = ("serve",),
        *,
        argv: list[str] | None = None,
        user: int | None = None,
        **settings: str,
    ) -> None:
        self.data_dir = data_dir
        self.env = cli_env(str(data_dir), **settings)
        self.argv = (argv or [sys.executable, "-m", "worker"]) + list(command)
        self.user = user
        self.process: subprocess.Popen[bytes] | None = None
        self.started: dict[str, Any] = {}

    def start(self) -> dict[str, Any]:
        """Run until the start-up line; return it (``listening`` has the real ports)."""
        self.process = subprocess.Popen(
            self.argv,
            env=self.env,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            user=self.user,
            group=None if self.user is None else _group_of(self.user),
            extra_groups=None if self.user is None else [],
        )
        assert self.process.stderr is not None
        for line in self.process.stderr:
            record = json.loads(line) if line.startswith(b"{") else {"line": line.decode()}
            if record.get("event") == "mailgate_started":
                self.started = record
                return record
        raise AssertionError(f"mailgate never started; exit {self.process.wait()}")

    def port(self, scheme: str) -> int:
        url = next(u for u in self.started["listening"] if u.startswith(scheme))
        return int(url.rsplit(":", 1)[1])

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.process = None

    def kill(self) -> None:
        """SIGKILL: the crash an MTA must survive."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()
        self.stop()


def decisions(data_dir: Path) -> list[dict[str, Any]]:
    """Every decision in the data dir's SQLite database, oldest first."""
    database = data_dir / "mailgate.db"
    if not database.exists():
        return []
    with sqlite3.connect(database) as connection:
        connection.row_factory = sqlite3.Row
        rows = connection.execute(
            "SELECT decision, channel, recipients, reply_status, ticket FROM decision ORDER BY seq"
        ).fetchall()
    return [{**dict(row), "recipients": json.loads(row["recipients"])} for row in rows]


def outbox_rows(data_dir: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(data_dir / "mailgate.db") as connection:
        return list(connection.execute("SELECT kind, status FROM outbox ORDER BY id"))


def _group_of(uid: int) -> int:
    import pwd

    return pwd.getpwuid(uid).pw_gid


def service_python(user: str) -> Path:
    """An interpreter ``user`` can execute with our packages: ours, else the system's."""
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    for candidate in (Path(os.path.realpath(sys.executable)), Path("/usr/bin") / version):
        probe = subprocess.run(
            ["runuser", "-u", user, "--", str(candidate), "-c", "import sys"],
            capture_output=True,
        )
        if probe.returncode == 0:
            return candidate
    raise AssertionError(f"no {version} that {user} can execute; install one outside /root")


def service_wrapper(directory: Path, user: str) -> Path:
    """A ``mailgate`` executable for ``user``: the service Python with our packages on its
    path (the venv's site-packages hold only wheels for this Python version)."""
    site = Path(sys.prefix) / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    path = directory / "mailgate"
    path.write_text(
        "#!/bin/sh\n"
        f"PYTHONPATH={ROOT}:{site / 'site-packages'} exec {service_python(user)} -m worker "
        '"$@"\n'
    )
    path.chmod(0o755)
    return path
