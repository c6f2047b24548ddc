"""A reply that the ledger will refuse is not written first, and no outcome depends on
that: a slot freed behind the gate's back still gets its reply, built at commit."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import add_standard_tickets, envelope, fixture_bytes, make_settings, with_headers
from sqlalchemy import delete
from sqlmodel import Session, select

from worker import outbox_items
from worker.pipeline import Mailgate
from worker.store.models import OutboxRow, ReplyLedger

SENDER = "alice@customer.example"


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The recipients of every reply body built, in order."""
    recipients: list[str] = []
    real = outbox_items.build_reply

    def counting(**kwargs: object) -> tuple[bytes, str]:
        recipients.append(str(kwargs["recipient"]))
        return real(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(outbox_items, "build_reply", counting)
    return recipients


def new_ticket(number: int) -> bytes:
    return with_headers(
        fixture_bytes("new_ticket.eml"), Message_ID=f"<flood-{number}@customer.example>"
    )


def steps(trace: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(step["rule"], step["hit"]) for step in trace]


def replies(gate: Mailgate) -> list[OutboxRow]:
    with Session(gate.engine) as session:
        return list(session.scalars(select(OutboxRow).where(OutboxRow.kind == "auto_reply")))


def test_a_flood_from_one_sender_builds_one_reply(gate: Mailgate, built: list[str]) -> None:
    decisions = [gate.ingest(new_ticket(n), envelope(SENDER)) for n in range(6)]
    assert [d.reply.reason for d in decisions] == ["rejected_new_ticket"] + ["rate_limited"] * 5
    assert built == [SENDER], "the five refused replies were never written"
    assert len(replies(gate)) == 1
    # Only the reply sent names its language; the refused ones record none (as a dry run
    # of a refused reply records it), whether or not their language was ever judged.
    assert [d.trace[-1]["rule"] for d in decisions] == ["reply_language"] + ["new_ticket"] * 5
    assert [d.reply_language for d in decisions] == ["en"] + [None] * 5


def test_a_slot_freed_behind_the_gate_still_gets_its_reply(
    gate: Mailgate, built: list[str]
) -> None:
    gate.ingest(new_ticket(1), envelope(SENDER))
    with Session(gate.engine) as session, session.begin():
        session.execute(delete(ReplyLedger))  # as an erasure of the sender does
    second = gate.ingest(new_ticket(2), envelope(SENDER))
    assert second.reply.as_dict() == {"status": "queued", "reason": "rejected_new_ticket"}
    assert second.reply_language == "en"
    assert second.trace[-1] == {
        "rule": "reply_language",
        "hit": True,
        "reason": "text in en (0.99)",
    }
    assert built == [SENDER, SENDER], "the second reply was built at commit, not skipped"
    assert len(replies(gate)) == 2


def test_a_claim_lost_to_another_gate_teaches_this_one(
    gate: Mailgate, tmp_path: Path, database_url: str, built: list[str]
) -> None:
    other = Mailgate.open(make_settings(tmp_path, database_url))  # another process's gate
    add_standard_tickets(other)
    try:
        gate.ingest(new_ticket(1), envelope(SENDER))
        lost = other.ingest(new_ticket(2), envelope(SENDER))
        again = other.ingest(new_ticket(3), envelope(SENDER))
    finally:
        other.engine.dispose()
    assert lost.reply.reason == again.reply.reason == "rate_limited"
    # The same record whether the body was built before the commit (lost) or not (again).
    assert steps(lost.trace) == steps(again.trace)
    # Built by the claimant, then once by the gate that did not know yet; then never.
    assert built == [SENDER, SENDER]
    assert len(replies(gate)) == 1
