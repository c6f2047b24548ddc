"""Group commit: many decisions in one transaction, each in its own savepoint."""

from __future__ import annotations

import gc
import threading
import weakref

from helpers import envelope, fixture_bytes, outbox_files, with_headers
from sqlmodel import Session, select

from worker.audit import verify_chain
from worker.decision import Decision
from worker.pipeline import Mailgate
from worker.store.models import ChainHead, DecisionRow, OutboxRow
from worker.store.repository import iter_chain


def test_batch_with_a_repeated_message_decides_it_once(gate: Mailgate) -> None:
    """The same message twice in one batch: the second is a duplicate of the first."""
    raw = fixture_bytes("new_ticket.eml")
    other = with_headers(raw, Message_ID="<other@customer.example>")
    pendings = [gate.decide(m, envelope("alice@customer.example")) for m in (raw, raw, other)]
    decisions = gate.recorder.record_many(pendings)
    assert [d.decision for d in decisions] == [
        "rejected_new_ticket",
        "duplicate",
        "rejected_new_ticket",
    ]
    assert decisions[1].duplicate_of == decisions[0].id
    assert decisions[1].original_decision == "rejected_new_ticket", "the race's loser knows it"
    assert decisions[0].original_decision is None
    assert decisions[2].reply.reason == "rate_limited", "one reply per sender and window"
    assert [d.seq for d in decisions] == [1, 2, 3]
    with Session(gate.engine) as session:
        head = session.get(ChainHead, 1)
        assert head is not None
        assert verify_chain(iter_chain(session), head.seq, head.digest).ok


def test_a_redelivery_in_a_later_batch_rolls_back_nothing_of_its_neighbours(
    gate: Mailgate,
) -> None:
    """A batch is first written without savepoints; a message decided in an earlier batch
    makes it start over with them. The first attempt's reply claim for its neighbour must
    be gone with it: the neighbour still gets its one reply, and the chain is whole."""
    raw = fixture_bytes("new_ticket.eml")
    first = gate.recorder.record_many([gate.decide(raw, envelope("alice@customer.example"))])
    neighbour = with_headers(raw, From="Dora <dora@customer.example>",
                             Message_ID="<dora@customer.example>")  # fmt: skip
    pendings = [
        gate.decide(neighbour, envelope("dora@customer.example")),
        gate.decide(raw, envelope("alice@customer.example")),
    ]
    decisions = gate.recorder.record_many(pendings)
    assert [d.decision for d in decisions] == ["rejected_new_ticket", "duplicate"]
    assert decisions[0].reply.status == "queued", "not rate-limited by its own first try"
    assert decisions[1].duplicate_of == first[0].id
    assert [d.seq for d in decisions] == [2, 3]
    with Session(gate.engine) as session:
        head = session.get(ChainHead, 1)
        assert head is not None and head.seq == 3
        assert verify_chain(iter_chain(session), head.seq, head.digest).ok


def test_group_commit_thread_under_concurrency(gate: Mailgate) -> None:
    """Twelve threads through the committer: every message decided once, chain intact."""
    gate.recorder.start()
    raw = fixture_bytes("new_ticket.eml")
    messages = [raw] * 4 + [with_headers(raw, Message_ID=f"<g{n}@x.example>") for n in range(8)]
    results: list[str] = []
    barrier = threading.Barrier(len(messages))

    def deliver(message: bytes, number: int) -> None:
        barrier.wait()
        decision = gate.ingest(message, envelope(f"s{number}@customer.example"))
        results.append(decision.decision)

    threads = [threading.Thread(target=deliver, args=(m, n)) for n, m in enumerate(messages)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["duplicate"] * 3 + ["rejected_new_ticket"] * 9
    assert gate.recorder.recorded == 12 and gate.recorder.batches <= 12
    assert len(outbox_files(gate)) == 9
    with Session(gate.engine) as session:
        head = session.get(ChainHead, 1)
        assert head is not None and head.seq == 12
        assert verify_chain(iter_chain(session), head.seq, head.digest).ok


def test_the_group_commit_thread_keeps_no_message_once_it_answered(gate: Mailgate) -> None:
    """A recorded pending (and the raw bytes it holds) is not kept alive by the committer
    while it waits for the next message: a 25 MB message used to stay until then."""
    gate.recorder.start()
    pending = gate.decide(fixture_bytes("new_ticket.eml"), envelope("a@customer.example"),
                          recording=True)  # fmt: skip
    probe = weakref.ref(pending)
    decision = gate.recorder.record(pending)
    del pending
    gc.collect()
    assert decision.id is not None and decision.decision == "rejected_new_ticket"
    assert probe() is None


def test_two_gates_racing_on_one_message_store_one_consistent_duplicate(gate: Mailgate) -> None:
    """Two replicas decide the same message, then both commit: the loser's outcome is
    replaced by the duplicate step, so no stored trace has a miss and a hit for one rule."""
    gates = [gate, Mailgate.open(gate.settings)]  # a second replica on the same database
    raw = fixture_bytes("new_ticket.eml")
    barrier = threading.Barrier(2)
    results: dict[int, Decision] = {}

    def deliver(number: int) -> None:
        pending = gates[number].decide(raw, envelope("alice@customer.example"), recording=True)
        barrier.wait()  # both decided before either commits: the unique key settles it
        results[number] = gates[number].record(pending)

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    gates[1].engine.dispose()
    first, second = sorted(results.values(), key=lambda d: d.decision == "duplicate")
    assert (first.decision, second.decision) == ("rejected_new_ticket", "duplicate")
    assert second.duplicate_of == first.id and second.rule == "duplicate"
    steps = [(step["rule"], step["hit"]) for step in second.trace]
    assert steps == [("ticket_reference", False), ("duplicate", True)]
    with Session(gate.engine) as session:
        stored = [row.trace for row in session.scalars(select(DecisionRow)).all()]
        assert len(session.scalars(select(OutboxRow)).all()) == 1, "one reply"
    assert len(stored) == 2
    for trace in stored:
        rules = [step["rule"] for step in trace]
        assert len(rules) == len(set(rules)), f"a rule twice in one trace: {rules}"
    assert [(s["rule"], s["hit"]) for s in gate.explain(raw, envelope("a@x.example")).trace] == (
        steps
    ), "a dry run knows it before the chain and tells it in the same shape"
