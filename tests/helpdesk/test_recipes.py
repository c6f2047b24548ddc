"""Each recipe in deploy/helpdesks/ sends its payload template, rendered the way that
helpdesk renders it, to a running mailgate, authenticated the way that helpdesk can; the
directory must then hold the ticket. Znuny's XSLT mapping runs through libxslt (xsltproc),
the library Znuny's XSLT mapping uses itself."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import shutil
import subprocess
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import ROOT, RunningServer, make_settings

from worker.clock import utcnow
from worker.pipeline import Mailgate
from worker.ticket_directory import get_ticket

RECIPES = ROOT / "deploy" / "helpdesks"
TOKEN = "api-token-for-the-recipes-0123456789"
SECRET = "webhook-secret-for-the-recipes-0123456789"


def template(name: str) -> str:
    text = (RECIPES / name).read_text(encoding="utf-8")
    found = re.search(r"```\w+ mailgate-payload\n(.*?)```", text, re.DOTALL)
    assert found, f"{name} has no mailgate-payload block"
    return found.group(1)


def lookup(values: dict[str, Any], path: str) -> Any:
    value: Any = values
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def render_zammad(text: str, values: dict[str, Any]) -> str:
    """Zammad's ``#{object.attribute}``; a value it does not have is ``-``."""
    return re.sub(r"#\{([\w.]+)\}", lambda m: str(lookup(values, m[1]) or "-"), text)


def render_liquid(text: str, values: dict[str, Any]) -> str:
    """Zendesk's and Jira's ``{{object.attribute}}``; Jira's ``.format(…)`` on a date."""

    def value(match: re.Match[str]) -> str:
        path, _, call = match[1].partition(".format(")
        found = lookup(values, path.strip())
        if call and found:
            return str(found.strftime("%Y-%m-%dT%H:%M:%S") + "Z")
        return "" if found is None else str(found)

    return re.sub(r"\{\{(.+?)\}\}(?=[^}]|$)", value, text)


def render_znuny(text: str, ticket: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """Znuny's XSLT mapping: the invoker data as XML in, RootElement's children out."""
    stylesheet, data = tmp_path / "mapping.xsl", tmp_path / "data.xml"
    stylesheet.write_text(text, encoding="utf-8")
    root = ET.Element("RootElement")
    node = ET.SubElement(root, "Ticket")
    for key, val in ticket.items():
        ET.SubElement(node, key).text = val
    data.write_bytes(ET.tostring(root, encoding="utf-8"))
    xsltproc = shutil.which("xsltproc")
    if xsltproc is None:
        pytest.skip("xsltproc missing (Debian xsltproc; scripts/test installs it)")
    out = subprocess.run([xsltproc, str(stylesheet), str(data)], capture_output=True, check=True)
    return {child.tag: (child.text or "") for child in ET.fromstring(out.stdout)}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Mailgate, int]]:
    gate = Mailgate.open(
        make_settings(
            tmp_path_factory.mktemp("recipes"),
            http_listen="127.0.0.1:0",
            api_token=TOKEN,
            webhook_secret=SECRET,
            helpdesk_kinds="Users:customer_care,Billing:customer_care,HELP:customer_care",
        )
    )
    running = RunningServer(gate)
    yield gate, running.port("http")
    running.stop()
    gate.engine.dispose()


def request(port: int, method: str, path: str, body: bytes, headers: dict[str, str]) -> int:
    call = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=body or None, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(call, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_zammad_trigger_webhook_signed_with_hmac_sha1(served: tuple[Mailgate, int]) -> None:
    gate, port = served
    values = {
        "ticket": {
            "number": "31001",
            "group": {"name": "Users"},
            "state": {"name": "closed"},
            "customer": {"email": "Zoe@Customer.example"},
            "close_at": "2026-12-01T10:00:00Z",
        }
    }
    body = render_zammad(template("zammad.md"), values).encode()
    signature = "sha1=" + hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest()
    headers = {"Content-Type": "application/json", "X-Hub-Signature": signature}
    assert request(port, "POST", "/api/tickets", body, headers) == 200
    row = get_ticket(gate.engine, "31001")
    assert row is not None and (row.kind, row.status) == ("customer_care", "closed")
    assert row.participants == ["zoe@customer.example"] and row.source == "api"
    assert row.closed_at is not None and row.closed_at.day == 1
    # An open ticket: Zammad writes "-" for its close time.
    values["ticket"].update({"number": "31002", "state": {"name": "open"}, "close_at": None})
    body = render_zammad(template("zammad.md"), values).encode()
    headers["X-Hub-Signature"] = "sha1=" + hmac.new(SECRET.encode(), body, "sha1").hexdigest()
    assert request(port, "POST", "/api/tickets", body, headers) == 200
    assert (opened := get_ticket(gate.engine, "31002")) and opened.status == "open"


def test_zendesk_trigger_webhook_signed_with_its_signing_secret(
    served: tuple[Mailgate, int],
) -> None:
    gate, port = served
    values = {
        "ticket": {
            "id": "4711",
            "group": {"name": "Support"},
            "status": "Solved",
            "requester": {"email": "yuri@customer.example"},
        }
    }
    body = render_liquid(template("zendesk.md"), values).encode()
    stamp = utcnow().strftime("%Y-%m-%dT%H:%M:%SZ")
    mac = hmac.new(SECRET.encode(), stamp.encode() + body, hashlib.sha256).digest()
    headers = {
        "Content-Type": "application/json",
        "X-Zendesk-Webhook-Signature": base64.b64encode(mac).decode(),
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
    }
    assert request(port, "POST", "/api/tickets", body, headers) == 200
    row = get_ticket(gate.engine, "4711")
    assert row is not None and (row.kind, row.status) == ("technical", "closed")
    forged = body.replace(b"4711", b"4712")  # the signature no longer fits the body
    assert request(port, "POST", "/api/tickets", forged, headers) == 401
    assert get_ticket(gate.engine, "4712") is None
    old = (utcnow() - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")  # replayed later
    mac = hmac.new(SECRET.encode(), old.encode() + forged, hashlib.sha256).digest()
    headers["X-Zendesk-Webhook-Signature"] = base64.b64encode(mac).decode()
    headers["X-Zendesk-Webhook-Signature-Timestamp"] = old
    assert request(port, "POST", "/api/tickets", forged, headers) == 401


def test_jira_automation_web_request_with_a_bearer_token(served: tuple[Mailgate, int]) -> None:
    gate, port = served
    from datetime import UTC, datetime

    values = {
        "issue": {
            "key": "HELP-12",
            "project": {"key": "HELP"},
            "status": {"name": "Done"},
            "reporter": {"emailAddress": "xena@customer.example"},
            "resolutiondate": datetime(2026, 12, 2, 8, 30, tzinfo=UTC),
        }
    }
    body = render_liquid(template("jira.md"), values).encode()
    url = render_liquid("/api/tickets/{{issue.key}}", values)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    assert request(port, "PUT", url, body, headers) == 200
    row = get_ticket(gate.engine, "help-12")  # ids compare case-insensitively
    assert row is not None and row.id == "HELP-12"
    assert (row.kind, row.status) == ("customer_care", "closed") and row.closed_at is not None
    assert request(port, "PUT", url, body, {"Content-Type": "application/json"}) == 401


def test_znuny_invoker_with_its_xslt_mapping(served: tuple[Mailgate, int], tmp_path: Path) -> None:
    gate, port = served
    ticket = {
        "TicketNumber": "2024010110000011",
        "Queue": "Billing",
        "State": "pending reminder",
        "StateType": "pending reminder",
        "CustomerUserID": "walt@customer.example",
        "Title": "Invoice",
    }
    mapped = render_znuny(template("znuny.md"), ticket, tmp_path)
    path = f"/api/tickets/{mapped.pop('id')}"  # the controller mapping /api/tickets/:id
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
    assert request(port, "PUT", path, json.dumps(mapped).encode(), headers) == 200
    row = get_ticket(gate.engine, "2024010110000011")
    assert row is not None and (row.kind, row.status) == ("customer_care", "open")
    assert row.participants == ["walt@customer.example"]


def test_signed_delete_and_bearer_reads(served: tuple[Mailgate, int]) -> None:
    gate, port = served
    body = json.dumps({"id": "5150", "kind": "technical"}).encode()
    sign = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert request(port, "POST", "/api/tickets", body, {"X-Mailgate-Signature": sign}) == 200
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    with urllib.request.urlopen(
        urllib.request.Request(f"http://127.0.0.1:{port}/api/tickets/5150", headers=bearer)
    ) as response:
        assert json.loads(response.read())["kind"] == "technical"
    empty = "sha256=" + hmac.new(SECRET.encode(), b"", hashlib.sha256).hexdigest()
    assert request(port, "DELETE", "/api/tickets/5150", b"", {"X-Mailgate-Signature": "x"}) == 401
    assert request(port, "DELETE", "/api/tickets/5150", b"", {"X-Mailgate-Signature": empty}) == 200
    assert get_ticket(gate.engine, "5150") is None
    assert request(port, "GET", "/api/tickets/5150", b"", bearer) == 404
    assert request(port, "GET", "/api/tickets", b"", {"X-Mailgate-Signature": empty}) == 401
