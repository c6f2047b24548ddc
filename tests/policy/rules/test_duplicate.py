"""``duplicate``: a message whose dedup key was already decided hits; a new one misses."""

from __future__ import annotations

from rule_context import MemoryDirectory, context

from worker.policy.rules.duplicate import Duplicate


def test_already_decided_message_hits() -> None:
    """The earlier decision's id is named in the reason."""
    directory = MemoryDirectory(decided={"mid:<m1@mail.customer.example>": 41})
    verdict = Duplicate().check(context(directory=directory))
    assert verdict.hit
    assert verdict.reason == "already decided as decision #41"


def test_first_delivery_misses() -> None:
    verdict = Duplicate().check(context())
    assert not verdict.hit
    assert verdict.reason.startswith("first time for mid:<m1@mail.customer.example>")
