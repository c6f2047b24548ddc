"""``mailgate serve`` as ops run it: start-up line, clean SIGTERM, clear failure on a taken port."""

from __future__ import annotations

import json
import signal
import smtplib
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

from helpers import cli_env, fixture_bytes


def start(tmp_path: Path, **env_overrides: str) -> subprocess.Popen[bytes]:
    env = cli_env(
        str(tmp_path / "var"),
        MAILGATE_SMTP_LISTEN="127.0.0.1:0",
        MAILGATE_HTTP_LISTEN="127.0.0.1:0",
    )
    env.update(env_overrides)
    return subprocess.Popen(
        [sys.executable, "-m", "worker", "serve"], env=env, stderr=subprocess.PIPE, cwd=tmp_path
    )


def console_role(base: str, token: str) -> str:
    request = urllib.request.Request(base + "/api/me", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return str(json.load(response)["role"])


def read_event(process: subprocess.Popen[bytes], event: str) -> dict[str, object]:
    assert process.stderr is not None
    for line in process.stderr:
        record = json.loads(line)
        if record.get("event") == event:
            return record  # type: ignore[no-any-return]
    raise AssertionError(f"{event} never logged; exit {process.wait()}")


def test_start_line_then_sigterm_exits_zero(tmp_path: Path) -> None:
    """One start-up line with listeners and policy; SIGTERM drains and exits 0."""
    process = start(tmp_path)
    try:
        # The quick start (no API token, SQLite): a console token generated, and said where.
        console = read_event(process, "console_token")
        token_file = Path(str(console["token_file"]))
        assert token_file.parent == (tmp_path / "var").resolve()
        assert token_file.stat().st_mode & 0o777 == 0o600
        started = read_event(process, "mailgate_started")
        assert started["policy"] == "wildix-2022-04"
        url = started["listening"][0]  # type: ignore[index]
        http = next(str(u) for u in started["listening"] if str(u).startswith("http://"))  # type: ignore[attr-defined]
        assert console_role(http, token_file.read_text().strip()) == "admin"
        port = int(str(url).rsplit(":", 1)[1])
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            smtp.sendmail(
                "alice@customer.example", ["support@wildix.com"], fixture_bytes("new_ticket.eml")
            )
        process.send_signal(signal.SIGTERM)
        read_event(process, "mailgate_stopped")
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_taken_port_is_one_clear_line(tmp_path: Path) -> None:
    """A port already in use stops start-up with one line naming the setting."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        process = start(tmp_path, MAILGATE_SMTP_LISTEN=f"127.0.0.1:{port}")
        _, err = process.communicate(timeout=60)
    lines = [line for line in err.decode().splitlines() if not line.startswith("{")]
    assert process.returncode != 0
    assert len(lines) == 1 and "MAILGATE_SMTP_LISTEN" in lines[0] and str(port) in lines[0]
