"""The held-mail API and named operators over real HTTP: roles, actions once (409 for the
second), content reads recorded, and the held-mail gauges."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    RunningServer,
    add_standard_tickets,
    envelope,
    fixture_bytes,
    make_settings,
    with_headers,
)
from web.test_http import call

from worker.access_log import access_log
from worker.operators import token_digest
from worker.pipeline import Mailgate

ADMIN = "admin-token-0123456789abcdefghij"
VIEWER = "viewer-token-0123456789abcdefghi"
OPERATOR = "operator-token-0123456789abcdefg"


def operators_served(
    tmp_path: Path, admin: str, viewer: str, operator: str, **settings: Any
) -> Iterator[tuple[Mailgate, RunningServer]]:
    """A served gate whose API knows ``admin``, the viewer vera and the operator olga."""
    operators = tmp_path / "operators.toml"
    operators.write_text(
        f'[[operator]]\nname = "vera"\nrole = "viewer"\ntoken_sha256 = "{token_digest(viewer)}"\n'
        f'[[operator]]\nname = "olga"\nrole = "operator"\n'
        f'token_sha256 = "{token_digest(operator)}"\n'
    )
    gate = Mailgate.open(
        make_settings(
            tmp_path,
            http_listen="127.0.0.1:0",
            api_token=admin,
            operators_file=operators,
            **settings,
        )
    )
    add_standard_tickets(gate)
    running = RunningServer(gate)
    yield gate, running
    running.stop()
    gate.engine.dispose()


def held_from(gate: Mailgate, message_id: str) -> str:
    """A colleague of the partner writes on ticket 1001: held for a person to judge."""
    raw = with_headers(
        fixture_bytes("followup_subject_tag.eml"),
        From="dora@partner.example",
        Message_ID=message_id,
    )
    decision = gate.ingest(raw, envelope("dora@partner.example"))
    assert decision.decision == "held" and decision.public_id
    return decision.public_id


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Mailgate, RunningServer]]:
    tmp_path = tmp_path_factory.mktemp("held_api")
    yield from operators_served(tmp_path, ADMIN, VIEWER, OPERATOR)


def hold(gate: Mailgate, n: int) -> str:
    return held_from(gate, f"<api-{n}@partner.example>")


def test_roles_are_enforced(served: tuple[Mailgate, RunningServer]) -> None:
    """A viewer reads but cannot act; an operator acts on held mail but edits no ticket."""
    gate, running = served
    public_id = hold(gate, 1)
    assert call(running, "/api/held", token=None)[0] == 401
    assert call(running, "/api/held", token="not-a-token-of-anyone-here")[0] == 401
    status, body = call(running, "/api/held", token=VIEWER)
    assert status == 200 and public_id in [item["public_id"] for item in body["held"]]
    release = f"/api/held/{public_id}/release"
    status, body = call(running, release, token=VIEWER, method="POST")
    assert (status, body["error"]) == (403, "forbidden: needs the operator role")
    ticket = {"kind": "technical"}
    assert call(running, "/api/tickets/9", token=OPERATOR, method="PUT", body=ticket)[0] == 403
    assert call(running, "/api/tickets/9", token=ADMIN, method="PUT", body=ticket)[0] == 200
    assert call(running, f"/api/held/{public_id}/discard", token=ADMIN, method="POST")[0] == 200


def test_an_action_applies_once(served: tuple[Mailgate, RunningServer]) -> None:
    gate, running = served
    public_id = hold(gate, 2)
    path = f"/api/held/{public_id}/release"
    assert call(running, path, token=OPERATOR, method="POST", body=[1])[0] == 400
    status, body = call(running, path, token=OPERATOR, method="POST", body={"reason": "colleague"})
    assert status == 200 and body["record"]["decision"] == "accepted_followup"
    assert body["record"]["trace"][0]["operator"] == "olga", "the operator's step first"
    status, body = call(running, f"/api/held/{public_id}/reject", token=OPERATOR, method="POST")
    assert status == 409 and "already acted on by olga" in body["error"]
    assert call(running, "/api/held/nosuchid/reject", token=OPERATOR, method="POST")[0] == 404
    assert public_id not in [
        i["public_id"] for i in call(running, "/api/held", token=VIEWER)[1]["held"]
    ]


def test_content_reads_are_recorded(served: tuple[Mailgate, RunningServer]) -> None:
    gate, running = served
    decision = gate.ingest(fixture_bytes("new_ticket.eml"), envelope("alice@customer.example"))
    assert decision.id is not None
    status, body = call(running, f"/api/decisions/{decision.id}", token=VIEWER)
    assert status == 200 and body["headers"]
    reads = [(r.operator, r.what, r.public_id) for r in access_log(gate.engine)]
    assert ("vera", "message", decision.public_id) in reads


def test_held_gauges(served: tuple[Mailgate, RunningServer]) -> None:
    gate, running = served
    before = _gauge(call(running, "/metrics", token=None)[1], "mailgate_held_messages")
    hold(gate, 3)
    metrics = call(running, "/metrics", token=None)[1]
    assert _gauge(metrics, "mailgate_held_messages") == before + 1
    assert _gauge(metrics, "mailgate_held_oldest_age_seconds") > 0


def _gauge(metrics: str, name: str) -> float:
    line = next(line for line in metrics.splitlines() if line.startswith(f"{name} "))
    return float(line.split()[1])
