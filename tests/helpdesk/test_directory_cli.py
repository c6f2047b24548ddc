"""``mailgate tickets add|list|show|remove|sync`` as an operator types them, and the
never-silent side: no destination for accepted follow-ups is a start-up warning, a
``degraded`` readiness check (still ready) and a banner flag in ``/api/summary``."""

from __future__ import annotations

import json
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from helpers import RunningServer, cli_env, make_settings
from structlog.testing import capture_logs
from typer.testing import CliRunner

from worker.cli import app
from worker.logs import configure_logging
from worker.pipeline import Mailgate
from worker.serve.preflight import refuse_unworkable


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def mailgate(tmp_path: Path, *args: str, **env: str) -> Ran:
    """The command in this process (typer's runner): the subprocess start costs seconds."""
    environment = {k: None for k in os.environ if k.startswith("MAILGATE_")}
    result = CliRunner().invoke(
        app, list(args), env={**environment, **cli_env(tmp_path / "var", **env)}
    )
    configure_logging()  # the command pointed the logs at the runner's stream, now closed
    return Ran(result.exit_code, result.stdout, result.stderr)


def test_tickets_add_list_show_remove(tmp_path: Path) -> None:
    refused = mailgate(tmp_path, "tickets", "add", "2024010110000011", "--kind", "technical")
    assert refused.returncode == 64
    assert "could never be matched" in refused.stderr and "znuny" in refused.stderr
    added = mailgate(
        tmp_path, "tickets", "add", "4242", "--kind", "technical", "--participant", "A@B.example"
    )
    assert added.returncode == 0, added.stderr
    listed = mailgate(tmp_path, "tickets", "list", "--format", "json")
    [row] = [json.loads(line) for line in listed.stdout.splitlines()]
    assert (row["id"], row["participants"], row["source"]) == ("4242", ["a@b.example"], "manual")
    shown = mailgate(tmp_path, "tickets", "show", "4242")
    assert "4242" in shown.stdout and "a@b.example" in shown.stdout and "manual" in shown.stdout
    assert mailgate(tmp_path, "tickets", "remove", "4242").returncode == 0
    missing = mailgate(tmp_path, "tickets", "show", "4242")
    assert missing.returncode == 66 and "ticket 4242: not in the directory" in missing.stderr
    unset = mailgate(tmp_path, "tickets", "sync")
    assert unset.returncode == 78 and "MAILGATE_HELPDESK" in unset.stderr
    down = mailgate(
        tmp_path,
        "tickets",
        "sync",
        MAILGATE_HELPDESK="rt",
        MAILGATE_HELPDESK_URL="http://127.0.0.1:9",
        MAILGATE_HELPDESK_TOKEN="1-2-3",
    )
    assert down.returncode == 75 and "helpdesk rt: RT unreachable" in down.stderr
    assert "Traceback" not in down.stderr


def test_followups_with_nowhere_to_go_are_never_silent(tmp_path: Path) -> None:
    token = "api-token-for-the-banner-0123456789"
    gate = Mailgate.open(make_settings(tmp_path, http_listen="127.0.0.1:0", api_token=token))
    with capture_logs() as logs:
        refuse_unworkable(gate)
    assert any(entry["event"] == "followups_have_no_destination" for entry in logs)
    running = RunningServer(gate)
    try:
        base = f"http://127.0.0.1:{running.port('http')}"
        with urllib.request.urlopen(f"{base}/readyz", timeout=30) as response:
            ready = json.loads(response.read())
        assert response.status == 200 and ready["ready"] and ready["status"] == "degraded"
        assert ready["checks"]["followups"].startswith("degraded: accepted follow-ups")
        request = urllib.request.Request(
            f"{base}/api/summary", headers={"Authorization": f"Bearer {token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            summary = json.loads(response.read())
        assert "followups" in summary["degraded"]
    finally:
        running.stop()
        gate.engine.dispose()
    routed = Mailgate.open(make_settings(tmp_path / "b", forward_to="desk@wildix.com"))
    with capture_logs() as logs:
        refuse_unworkable(routed)
    assert not any(entry["event"] == "followups_have_no_destination" for entry in logs)
    routed.engine.dispose()
