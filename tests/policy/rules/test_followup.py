"""``followup``: the chain's fall-through always hits and names the ticket."""

from __future__ import annotations

from rule_context import MemoryDirectory, context, message, ticket

from worker.policy.rules.followup import Followup


def test_names_the_ticket() -> None:
    raw = message(subject="Re: [Ticket#1001] thanks")
    verdict = Followup().check(context(raw, directory=MemoryDirectory((ticket(),))))
    assert (verdict.hit, verdict.reason) == (True, "follow-up on ticket 1001")
