"""The race: two replicas release the same held message at once. One release, one refusal
(exit 65 from the CLI, 409 from the API), one delivery; on SQLite and on PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from helpers import (
    add_standard_tickets,
    cli_env,
    envelope,
    fixture_bytes,
    make_settings,
    with_headers,
)
from sqlalchemy import text

from worker.decision import Decision
from worker.errors import Conflict
from worker.held import HeldAction, act
from worker.pipeline import Mailgate

DESK = "desk@helpdesk.example"


def hold(gate: Mailgate, n: int) -> Decision:
    raw = with_headers(
        fixture_bytes("followup_subject_tag.eml"),
        From="dora@partner.example",
        Message_ID=f"<race-{n}@partner.example>",
    )
    decision = gate.ingest(raw, envelope("dora@partner.example"))
    assert decision.decision == "held"
    return decision


def deliveries(gate: Mailgate, held: Decision) -> list[tuple[str, int]]:
    """(decision, forwards) of every record acting on ``held``."""
    with gate.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT d.decision, COUNT(o.id) FROM decision d LEFT JOIN outbox o "
                "ON o.decision_id = d.id AND o.kind = 'forward_mail' AND o.rcpt_to = :desk "
                "WHERE d.acts_on = :id GROUP BY d.id, d.decision"
            ),
            {"id": held.id, "desk": DESK},
        ).all()
    return [(str(decision), int(count)) for decision, count in rows]


def test_two_replicas_release_the_same_message_once(tmp_path: Path, database_url: str) -> None:
    replicas = [
        Mailgate.open(make_settings(tmp_path / name, database_url, forward_to=DESK))
        for name in ("a", "b")
    ]
    try:
        add_standard_tickets(replicas[0])
        by_processes, by_threads = hold(replicas[0], 1), hold(replicas[0], 2)
        assert by_processes.public_id and by_threads.public_id

        # Two `mailgate held release` processes, started together.
        env = cli_env(tmp_path / "cli", MAILGATE_DATABASE_URL=database_url)
        env["MAILGATE_FORWARD_TO"] = DESK
        command = [sys.executable, "-m", "worker", "held", "release", by_processes.public_id]
        processes = [
            subprocess.Popen(
                [*command, "--operator", f"op{n}"], env=env, stderr=subprocess.PIPE, text=True
            )
            for n in (1, 2)
        ]
        outcomes = [(p.wait(120), p.stderr.read() if p.stderr else "") for p in processes]
        assert sorted(code for code, _ in outcomes) == [0, 65]
        assert any("already acted on" in err for code, err in outcomes if code == 65)
        assert deliveries(replicas[0], by_processes) == [("accepted_followup", 1)]

        # Two replicas in one process, let go at the same instant.
        barrier = threading.Barrier(2)

        def release(replica: Mailgate) -> Decision | Conflict:
            barrier.wait(30)
            try:
                assert by_threads.public_id is not None
                return act(replica, by_threads.public_id, HeldAction.RELEASE, "op")
            except Conflict as exc:
                return exc

        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(release, replicas))
        assert sorted(type(r).__name__ for r in results) == ["Conflict", "Decision"]
        assert deliveries(replicas[0], by_threads) == [("accepted_followup", 1)]
    finally:
        for replica in replicas:
            replica.engine.dispose()
