"""What `mailgate serve` and `mailgate dispatch` say and refuse at start-up.

A configuration that cannot work stops start-up with one line (reject mode with LMTP);
one that probably does not gets a warning (no support domains set); the start-up line
names the support domains and every listener, with ``--workers`` too; ``dispatch`` (and
``serve`` with every listener off) runs the outbox alone and delivers what ``ingest``
committed.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from helpers import RelaySink, cli_env, fixture_bytes, free_port, with_headers


def run(tmp_path: Path, *args: str, **settings: str) -> subprocess.Popen[bytes]:
    env = cli_env(str(tmp_path / "var"), **settings)
    return subprocess.Popen(
        [sys.executable, "-m", "worker", *args],
        env=env,
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=tmp_path,
    )


def events_until(process: subprocess.Popen[bytes], event: str) -> list[dict[str, Any]]:
    """Every JSON log record up to and including ``event``."""
    assert process.stderr is not None
    seen = []
    for line in process.stderr:
        record = json.loads(line)
        seen.append(record)
        if record.get("event") == event:
            return seen
    raise AssertionError(f"{event} never logged; exit {process.wait()}: {seen}")


def stop(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()


def test_reject_mode_smtp_with_lmtp_is_refused_pointing_to_the_milter(tmp_path: Path) -> None:
    """The MTA already queued LMTP mail: its bounce would be backscatter. One line, exit 78."""
    process = run(
        tmp_path,
        "serve",
        MAILGATE_REJECT_MODE="smtp",
        MAILGATE_LMTP_LISTEN="127.0.0.1:0",
        MAILGATE_SMTP_LISTEN="off",
    )
    _, err = process.communicate(timeout=60)
    lines = [line for line in err.decode().splitlines() if not line.startswith("{")]
    assert process.returncode == 78
    assert len(lines) == 1 and "MAILGATE_MILTER_LISTEN" in lines[0], lines


def test_workers_start_line_lists_domains_and_every_listener(tmp_path: Path) -> None:
    """`--workers 2`: support domains, SMTP, milter and HTTP in the one start-up line; no
    MAILGATE_SUPPORT_DOMAINS is a warning naming the policy's domains in use."""
    ports = {name: free_port() for name in ("smtp", "milter", "http")}
    process = run(
        tmp_path,
        "serve",
        "--workers",
        "2",
        MAILGATE_SMTP_LISTEN=f"127.0.0.1:{ports['smtp']}",
        MAILGATE_MILTER_LISTEN=f"127.0.0.1:{ports['milter']}",
        MAILGATE_HTTP_LISTEN=f"127.0.0.1:{ports['http']}",
    )
    try:
        records = events_until(process, "mailgate_started")
    finally:
        assert stop(process) == 0
    warning = next(r for r in records if r["event"] == "support_domains_not_set")
    assert warning["using"] == ["wildix.com"]
    started = records[-1]
    assert started["workers"] == 2 and started["support_domains"] == ["wildix.com"]
    assert started["listening"] == [
        f"smtp://127.0.0.1:{ports['smtp']}",
        f"milter://127.0.0.1:{ports['milter']}",
        f"http://127.0.0.1:{ports['http']}",
    ]


@pytest.mark.parametrize(
    "command",
    [("dispatch",), ("serve",)],
    ids=["dispatch", "serve-with-every-listener-off"],
)
def test_outbox_alone_delivers_what_ingest_committed(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    """`ingest` commits the reply; `dispatch` (or a listener-less `serve`) relays it, and
    loads no language model."""
    relay = RelaySink()
    settings = {
        "MAILGATE_RELAY_URL": relay.url,
        "MAILGATE_SUPPORT_DOMAINS": "wildix.com",
        "MAILGATE_LANGUAGE_PRELOAD": "true",  # asked for, and still nothing to load
    }
    try:
        ingest = run(tmp_path, "ingest", "-", "--sender", "alice@customer.example", **settings)
        ingest.communicate(fixture_bytes("new_ticket.eml"), timeout=60)
        assert ingest.returncode == 0 and relay.messages == []
        if command == ("serve",):
            off = ("SMTP_LISTEN", "MILTER_LISTEN", "INGEST_SOCKET")
            settings |= {f"MAILGATE_{name}": "off" for name in off}
        else:  # dispatch ignores the listeners even when they are configured
            settings |= {"MAILGATE_SMTP_LISTEN": f"127.0.0.1:{free_port()}"}
        process = run(tmp_path, *command, **settings)
        try:
            records = events_until(process, "mailgate_started")
            started = records[-1]
            assert started["listening"] == []
            # Nothing to decide: no language model loaded (seconds and memory for nothing).
            assert "language_models_loaded" not in {r["event"] for r in records}
            relay.wait_for(1)
        finally:
            assert stop(process) == 0
        [(sender, recipients, body)] = relay.messages
        assert sender == "<>" and recipients == ["alice@customer.example"]
        assert b"Auto-Submitted: auto-replied" in body
    finally:
        relay.stop()


def test_workers_share_one_unix_milter_socket(tmp_path: Path) -> None:
    """`--workers 2` with ``unix:/path``: worker 0 alone binds the socket; every connection is
    answered."""
    from ingress.test_milter import MilterClient

    path = tmp_path / "milter.sock"
    process = run(
        tmp_path,
        "serve",
        "--workers",
        "2",
        MAILGATE_SMTP_LISTEN="off",
        MAILGATE_MILTER_LISTEN=f"unix:{path}",
    )
    try:
        events_until(process, "mailgate_started")
        for index in range(4):  # several connections, whichever worker the kernel would pick
            raw = with_headers(fixture_bytes("new_ticket.eml"), Message_ID=f"<{index}@c.example>")
            client = MilterClient(str(path))
            replies = client.message("alice@customer.example", ["support@wildix.com"], raw)
            client.close()
            assert replies[0][1].startswith(b"550 5.7.1 Email only accepts")
    finally:
        assert stop(process) == 0


def test_language_models_load_once_before_the_workers_fork_and_listen(tmp_path: Path) -> None:
    """The 2022 policy judges language: its models load in the parent, once, before the
    start-up line, so no client waits for them and both workers share the pages."""
    process = run(
        tmp_path,
        "serve",
        "--workers",
        "2",
        MAILGATE_SMTP_LISTEN=f"127.0.0.1:{free_port()}",
        MAILGATE_SUPPORT_DOMAINS="wildix.com",
        MAILGATE_LANGUAGE_PRELOAD="true",
    )
    try:
        records = events_until(process, "mailgate_started")
    finally:
        assert stop(process) == 0
    loaded = [r for r in records if r["event"] == "language_models_loaded"]
    assert len(loaded) == 1 and loaded[0]["seconds"] > 0


def test_language_preload_off_starts_without_the_models(tmp_path: Path) -> None:
    """MAILGATE_LANGUAGE_PRELOAD=false: the listener opens at once; models load on first use."""
    process = run(
        tmp_path,
        "serve",
        MAILGATE_SMTP_LISTEN=f"127.0.0.1:{free_port()}",
        MAILGATE_SUPPORT_DOMAINS="wildix.com",
        MAILGATE_LANGUAGE_PRELOAD="false",
    )
    try:
        records = events_until(process, "mailgate_started")
    finally:
        assert stop(process) == 0
    assert "language_models_loaded" not in {r["event"] for r in records}


STOP_DURING_START = """
import os, signal, sys
from worker.serve import EarlyStop, serve
from worker.startup import open_gate, read_settings
EarlyStop.install()
os.kill(os.getpid(), signal.SIG{name})  # as if systemd stopped us while we were starting
sys.exit(serve(open_gate(read_settings(None)), workers={workers}))
"""


@pytest.mark.parametrize(("name", "workers"), [("TERM", 1), ("INT", 2)])
def test_a_stop_signal_during_start_up_stops_cleanly(
    tmp_path: Path, name: str, workers: int
) -> None:
    """SIGTERM/SIGINT before the event loop handles them: serve starts, stops, exits 0."""
    code = STOP_DURING_START.format(name=name, workers=workers)
    env = cli_env(str(tmp_path / "var"), MAILGATE_SMTP_LISTEN="127.0.0.1:0")
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-2000:]
    # With workers, their lines and the parent's share the stream: the parent's comes last.
    assert b'"event": "mailgate_stopped"' in result.stderr.splitlines()[-1]
