"""``policy_in_force``: mail received before any policy took effect hits."""

from __future__ import annotations

from datetime import UTC, datetime

from rule_context import context

from worker.policy.rules.policy_in_force import PolicyInForce


def test_no_policy_hits_and_names_the_time() -> None:
    at = datetime(2017, 5, 1, 12, 0, tzinfo=UTC)
    verdict = PolicyInForce().check(context(policy_id=None, at=at))
    assert verdict.hit
    assert verdict.reason == f"no policy in force at {at.isoformat()}"


def test_policy_in_force_misses() -> None:
    verdict = PolicyInForce().check(context())
    assert (verdict.hit, verdict.reason) == (False, "policy wildix-2022-04 in force")
