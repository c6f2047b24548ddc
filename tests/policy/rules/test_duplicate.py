"""``duplicate``: a message whose dedup key was already decided hits; a new one misses."""

from __future__ import annotations

from dataclasses import replace

from rule_context import MemoryDirectory, context

from worker.policy.earlier import deferred
from worker.policy.rules.duplicate import Duplicate


def test_already_decided_message_hits() -> None:
    """The earlier decision's id is named in the reason."""
    earlier = {"mid:<m1@mail.customer.example>": (41, "rejected_new_ticket")}
    verdict = Duplicate().check(context(directory=MemoryDirectory(decided=earlier)))
    assert verdict.hit
    assert verdict.reason == "already decided as decision #41"


def test_first_delivery_misses() -> None:
    verdict = Duplicate().check(context())
    assert not verdict.hit
    assert verdict.reason == "first time for mid:<m1@mail.customer.example>"


def test_deferred_answer_misses_saying_the_commit_confirms_it() -> None:
    """Recording reads nothing before the chain: the miss says the unique key decides."""
    ctx = context()
    ctx = replace(ctx, earlier=deferred(ctx.mail.dedup_key))
    verdict = Duplicate().check(ctx)
    assert not verdict.hit
    assert verdict.reason == (
        "first time for mid:<m1@mail.customer.example> unless the unique key finds it at commit"
    )
