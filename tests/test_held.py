"""Held mail (``worker.held``): what the April 2022 policy holds, and what an operator's
release, reject and discard, or the hold expiry, record and send; each exactly once."""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from helpers import (
    POLICIES,
    RunningServer,
    add_standard_tickets,
    envelope,
    fixture_bytes,
    make_settings,
    outbox_files,
    with_headers,
)
from sqlalchemy import text

from worker.chain_store import verify_database
from worker.clock import utcnow
from worker.decision import Decision
from worker.errors import Conflict, InputError
from worker.held import HeldAction, NotFound, act, expire_held, held_queue
from worker.pipeline import Mailgate
from worker.store.ticket_cache import CachedDirectory


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[Mailgate]:
    """A SQLite gate that forwards accepted follow-ups to the desk by mail (spooled)."""
    instance = Mailgate.open(make_settings(tmp_path, forward_to="desk@helpdesk.example"))
    add_standard_tickets(instance)
    yield instance
    instance.engine.dispose()


def colleague(gate: Mailgate, sender: str = "dora@partner.example", n: int = 1) -> Decision:
    """A customer's colleague, not a participant, writing on open ticket 1001."""
    raw = with_headers(
        fixture_bytes("followup_subject_tag.eml"),
        From=sender,
        Message_ID=f"<colleague-{n}@partner.example>",
    )
    return gate.ingest(raw, envelope(sender))


def spooled(gate: Mailgate) -> list[bytes]:
    return [path.read_bytes() for path in outbox_files(gate)]


def test_a_colleague_is_held_with_an_acknowledgement(lite: Mailgate) -> None:
    """April 2022 holds a non-participant's follow-up and says a person will look at it."""
    held = colleague(lite)
    assert (held.decision, held.rule, held.reply.reason) == (
        "held",
        "unauthorized_sender",
        "held",
    )
    held_step = next(step for step in held.trace if step["rule"] == held.rule)
    assert "held for an operator" in held_step["reason"]
    [ack] = spooled(lite)
    assert b"a person from our support" in ack and b"1001" not in ack.split(b"\r\n\r\n", 1)[1]
    assert [item.public_id for item in held_queue(lite)] == [held.public_id]


def test_release_delivers_once_and_adds_the_participant(lite: Mailgate) -> None:
    """Release records accepted_followup pointing to the first record with the operator's
    name, forwards it to the desk, and with add_participant the next mail is accepted."""
    held = colleague(lite)
    assert held.public_id is not None
    record = act(lite, held.public_id, HeldAction.RELEASE, "alice", "a colleague", True)
    assert (record.decision, record.rule, record.ticket) == (
        "accepted_followup",
        "operator",
        "1001",
    )
    step = next(step for step in record.trace if step["rule"] == "operator")
    assert (step["operator"], step["action"], step["acts_on"]) == ("alice", "release", held.id)
    assert "a colleague" in step["reason"]
    forwards = [body for body in spooled(lite) if b"desk@helpdesk.example" in body]
    assert len(forwards) == 1 and b"X-Mailgate-Ticket: 1001" in forwards[0]
    assert held_queue(lite) == []
    with pytest.raises(Conflict, match="already acted on by alice"):
        act(lite, held.public_id, HeldAction.REJECT, "bob")
    lite.tickets = type(lite.tickets)(lite.engine)  # a fresh cache reads the directory
    ticket = CachedDirectory(lite.tickets).ticket("1001")
    assert ticket is not None and "dora@partner.example" in ticket.participants
    assert colleague(lite, n=2).decision == "accepted_followup"
    assert verify_database(lite.engine)[0].ok, "new records extend the chain, none is edited"


def test_reject_sends_the_rules_reply_and_discard_sends_none(lite: Mailgate) -> None:
    first, second = colleague(lite, "eve@a.example", 1), colleague(lite, "mal@b.example", 2)
    assert first.public_id and second.public_id
    rejected = act(lite, first.public_id, HeldAction.REJECT, "alice", "not theirs")
    assert (rejected.decision, rejected.reply.status) == (
        "rejected_unauthorized_sender",
        "queued",
    )
    discarded = act(lite, second.public_id, HeldAction.DISCARD, "alice")
    assert (discarded.decision, discarded.reply.as_dict()) == (
        "rejected_unauthorized_sender",
        {"status": "suppressed", "reason": "discarded"},
    )
    to_eve = [body for body in spooled(lite) if b"To: eve@a.example" in body]
    to_mal = [body for body in spooled(lite) if b"To: mal@b.example" in body]
    assert len(to_eve) == 2 and len(to_mal) == 1, "eve: ack + rejection; mal: ack only"
    assert b"could not be added to a ticket" in to_eve[1]


def test_unknown_id_not_held_and_missing_participant_ticket_are_refused(lite: Mailgate) -> None:
    accepted = lite.ingest(
        fixture_bytes("followup_subject_tag.eml"), envelope("bob@partner.example")
    )
    assert accepted.public_id is not None
    with pytest.raises(NotFound):
        act(lite, "nosuchid", HeldAction.RELEASE, "alice")
    with pytest.raises(Conflict, match="not held"):
        act(lite, accepted.public_id, HeldAction.RELEASE, "alice")
    raw = with_headers(
        fixture_bytes("followup_subject_tag.eml"),
        Subject="Re: [Ticket#777777] mistyped",
        Message_ID="<typo@partner.example>",
    )
    unknown = lite.ingest(raw, envelope("bob@partner.example"))
    assert (unknown.decision, unknown.rule) == ("held", "unknown_ticket")
    assert unknown.public_id is not None
    with pytest.raises(InputError, match="777777 is not in the ticket directory"):
        act(lite, unknown.public_id, HeldAction.RELEASE, "alice", add_participant=True)
    assert [item.public_id for item in held_queue(lite)] == [unknown.public_id], "nothing kept"


def test_quarantined_mail_can_be_released(lite: Mailgate) -> None:
    quarantined = lite.ingest(fixture_bytes("binary_garbage.eml"), envelope("x@y.example"))
    assert quarantined.decision == "quarantined" and quarantined.public_id
    [item] = held_queue(lite)
    assert (item.decision, item.expires_at) == ("quarantined", None)
    record = act(lite, quarantined.public_id, HeldAction.RELEASE, "alice")
    assert record.decision == "accepted_followup" and held_queue(lite) == []


def test_expiry_gives_the_rules_decision_once(gate: Mailgate) -> None:
    """After hold_days the rule's own decision and reply; a second run finds nothing (the
    queue's query on SQLite and PostgreSQL)."""
    held = colleague(gate)
    assert expire_held(gate) == 0, "not yet: the policy holds for 7 days"
    later = utcnow() + timedelta(days=7, minutes=1)
    assert expire_held(gate, later) == 1
    assert expire_held(gate, later) == 0
    with gate.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT decision, rule, reply_status, trace FROM decision WHERE acts_on = :id"),
            {"id": held.id},
        ).all()
    [(decision, rule, reply, trace)] = rows
    assert (decision, rule, reply) == ("rejected_unauthorized_sender", "hold_expired", "queued")
    trace = json.loads(trace) if isinstance(trace, str) else trace
    assert next(s for s in trace if "acts_on" in s)["acts_on"] == held.id


def test_serve_expires_held_mail(tmp_path: Path) -> None:
    """``serve`` runs the expiry job: with a hold shorter than a millisecond, a held message
    gets its rule's decision as soon as the service starts."""
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    path = policies / "wildix-2022-04.toml"
    path.write_text(path.read_text().replace("hold_days = 7", "hold_days = 0.000000001"))
    gate = Mailgate.open(make_settings(tmp_path, policy_dir=policies))
    add_standard_tickets(gate)
    held = colleague(gate)
    running = RunningServer(gate)
    try:
        deadline = time.monotonic() + 60
        while not (expired := _acting_on(gate, held)):
            assert time.monotonic() < deadline, "the expiry job never ran"
            time.sleep(0.05)  # polling the store for the job's record, not a synchronisation
    finally:
        running.stop()
        gate.engine.dispose()
    assert expired == [("rejected_unauthorized_sender", "hold_expired")]


def _acting_on(gate: Mailgate, held: Decision) -> list[tuple[str, str]]:
    with gate.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT decision, rule FROM decision WHERE acts_on = :id"), {"id": held.id}
        ).all()
    return [(str(a), str(b)) for a, b in rows]


def test_rejecting_an_unknown_or_a_foreign_reference_reads_the_same(lite: Mailgate) -> None:
    """Holding is no oracle, and neither is what an operator's reject sends afterwards."""
    raw = with_headers(
        fixture_bytes("followup_subject_tag.eml"),
        From="eve@a.example",
        Subject="Re: [Ticket#777777] hello",
        Message_ID="<probe-1@a.example>",
    )
    unknown = lite.ingest(raw, envelope("eve@a.example"))
    foreign = colleague(lite, "mal@b.example", 2)
    assert {unknown.rule, foreign.rule} == {"unknown_ticket", "unauthorized_sender"}
    for held in (unknown, foreign):
        assert held.public_id is not None
        act(lite, held.public_id, HeldAction.REJECT, "alice")
    # Each reply quotes its own opaque id (issue 21): masked, the texts must be the same.
    opaque = re.compile(rb"\b[a-z2-7]{16}\b")
    bodies = [opaque.sub(b"ID", body.split(b"\r\n\r\n", 1)[1]) for body in spooled(lite)]
    acks, rejections = bodies[:2], bodies[2:]  # spooled in the order they were committed
    assert len(set(acks)) == 1 and len(set(rejections)) == 1 and acks[0] != rejections[0]


def test_a_held_quarantine_gets_no_acknowledgement(tmp_path: Path) -> None:
    """Holding a rule that never answers (here ``quarantine``) sends nothing either."""
    policies = tmp_path / "policies"
    shutil.copytree(POLICIES, policies)
    path = policies / "wildix-2022-04.toml"
    path.write_text(path.read_text().replace("[actions]\n", '[actions]\nquarantine = "hold"\n'))
    gate = Mailgate.open(make_settings(tmp_path, policy_dir=policies))
    try:
        held = gate.ingest(fixture_bytes("binary_garbage.eml"), envelope("x@y.example"))
        assert (held.decision, held.rule) == ("held", "quarantine")
        assert held.reply.as_dict() == {"status": "suppressed", "reason": "quarantined"}
        assert outbox_files(gate) == []
    finally:
        gate.engine.dispose()
