"""Bad HTTP input gets ``400`` and one line saying what is wrong (issue 25, finding 5).

Before, each of these was a ``500`` with a traceback in the log: a bearer token that is not
ASCII (failing inside the auth check, unauthenticated), decision ids and ``before`` cursors
too big for the database or for ``int()``, a deeply nested JSON body, and a ``closed_at``
that cannot be moved to UTC. Also: ``/?refresh=`` is clamped (finding 9).
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import RunningServer, make_settings

from worker.pipeline import Mailgate

TOKEN = "s3cret-token-0123456789abcdef"


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[RunningServer]:
    yield from _serve(tmp_path, database_url)


@pytest.fixture
def served_sqlite(tmp_path: Path) -> Iterator[RunningServer]:
    yield from _serve(tmp_path, None)


def _serve(tmp_path: Path, database_url: str | None) -> Iterator[RunningServer]:
    settings = make_settings(
        tmp_path, database_url, smtp_listen="off", http_listen="127.0.0.1:0", api_token=TOKEN
    )
    gate = Mailgate.open(settings)
    running = RunningServer(gate)
    yield running
    running.stop()
    gate.engine.dispose()


def request(
    running: RunningServer,
    path: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    authorization: str = f"Bearer {TOKEN}",
) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", running.port("http"), timeout=30)
    try:
        # http.client sends header values as Latin-1: "\xff\xfe" goes as those two octets.
        connection.request(method, path, body=body, headers={"Authorization": authorization})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


BAD = [
    ("/api/decisions/99999999999999999999", "GET", None, "decision id"),
    ("/api/decisions/" + "9" * 5000, "GET", None, "decision id"),
    ("/api/decisions?before=" + "9" * 20, "GET", None, "before"),
    ("/api/decisions?limit=" + "9" * 5000, "GET", None, "limit"),
    ("/api/tickets/1001", "PUT", b"[" * 100_000, "JSON"),
    (
        "/api/tickets/1001",
        "PUT",
        json.dumps(
            {"kind": "technical", "status": "closed", "closed_at": "9999-12-31T23:59:59-23:59"}
        ).encode(),
        "closed_at",
    ),
]


def test_each_bad_input_is_a_400_with_one_line(
    served: RunningServer, capfd: pytest.CaptureFixture[str]
) -> None:
    for path, method, body, named in BAD:
        status, raw = request(served, path, method=method, body=body)
        assert status == 400, (path[:60], status, raw[:200])
        error = json.loads(raw)["error"]
        assert named in error and "\n" not in error and len(error) < 200, error
    status, raw = request(served, "/api/summary", authorization="Bearer \xff\xfe")
    assert status == 400 and b"Authorization" in raw, raw
    assert request(served, "/api/summary")[0] == 200, "the server is still answering"
    logged = capfd.readouterr()
    assert "Traceback" not in logged.out + logged.err
    assert "Error handling request" not in logged.out + logged.err


def test_dashboard_refresh_is_clamped(served_sqlite: RunningServer, browser_page: Any) -> None:
    """``/?refresh=0.001`` or a negative value cannot make the page poll continuously: the
    interval the page uses, read in Chromium, is kept from 5 s to an hour."""
    # The session's Chromium (conftest): a second sync Playwright inside it would refuse.
    used = {}
    for asked in ("0.001", "-5", "nan", "1e309", "30"):
        browser_page.goto(f"http://127.0.0.1:{served_sqlite.port('http')}/?refresh={asked}")
        used[asked] = browser_page.evaluate("REFRESH_SECONDS")
    assert used == {"0.001": 5, "-5": 5, "nan": 15, "1e309": 3600, "30": 30}
