"""The files ops load into their own tools: Prometheus alert rules and a Grafana dashboard.

``promtool`` (Debian's prometheus package, installed by scripts/test) checks the rules; then
every metric name in a rule or a panel query must be one that ``mailgate serve`` exposes on
/metrics, so neither file can drift into watching a series that does not exist.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest
from helpers import RunningServer, make_settings

from worker.pipeline import Mailgate

DEPLOY = Path(__file__).parent.parent / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "mailgate.json"
METRIC = re.compile(r"\bmailgate_[a-z0-9_]+")


@pytest.fixture(scope="module")
def exposed(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every sample and family name a freshly started ``serve`` exposes on /metrics."""
    gate = Mailgate.open(
        make_settings(
            tmp_path_factory.mktemp("ops"), smtp_listen="127.0.0.1:0", http_listen="127.0.0.1:0"
        )
    )
    running = RunningServer(gate)
    try:
        url = f"http://127.0.0.1:{running.port('http')}/metrics"
        with urllib.request.urlopen(url, timeout=30) as response:
            text = response.read().decode()
    finally:
        running.stop()
        gate.engine.dispose()
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def queries_of(value: object) -> list[str]:
    """Every ``expr`` string anywhere in a Grafana dashboard."""
    if isinstance(value, dict):
        found = [v for k, v in value.items() if k == "expr" and isinstance(v, str)]
        return found + [q for v in value.values() for q in queries_of(v)]
    if isinstance(value, list):
        return [q for v in value for q in queries_of(v)]
    return []


def test_promtool_accepts_the_alert_rules() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: scripts/test installs Debian's prometheus package"
    result = subprocess.run(
        [promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # Every rule of the file is found (counted from the file: other rules may join it).
    rules = ALERTS.read_text().count("- alert:")
    assert rules >= 10 and f"SUCCESS: {rules} rules found" in result.stdout


def test_alerts_fire_on_the_series_mailgate_exposes() -> None:
    """promtool's rule unit tests: dead letter, 451 rate and outbox age fire; calm stays calm."""
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: scripts/test installs Debian's prometheus package"
    unit = Path(__file__).parent / "fixtures" / "alerts_test.yml"
    result = subprocess.run(
        [promtool, "test", "rules", str(unit)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


def test_alerts_watch_only_exposed_metrics(exposed: set[str]) -> None:
    # No YAML parser among our dependencies; promtool above has parsed it, comments aside.
    text = "\n".join(
        line
        for line in ALERTS.read_text(encoding="utf-8").splitlines()
        if not line.lstrip().startswith("#")
    )
    names = set(re.findall(r"- alert: (\w+)", text))
    assert {"MailgateReplyDeadLetter", "MailgateOutboxStuck", "MailgateTempfailRate"} <= names
    assert "MailgateImapLag" in names and "MailgateHeldMailWaiting" in names
    used = set(METRIC.findall(text))
    assert used and used <= exposed, sorted(used - exposed)


def test_dashboard_queries_name_exposed_metrics(exposed: set[str]) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    queries = queries_of(dashboard)
    titles = [panel["title"] for panel in dashboard["panels"]]
    wanted_titles = ("Decisions by kind", "Rejections", "delivery state", "latency", "IMAP lag")
    for wanted in (*wanted_titles, "Held mail", "Oldest held"):
        assert any(wanted.lower() in title.lower() for title in titles), wanted
    assert any("histogram_quantile(0.95" in q for q in queries)
    used = {m for q in queries for m in METRIC.findall(q)}
    assert len(queries) >= 8 and used <= exposed, sorted(used - exposed)
