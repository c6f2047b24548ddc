"""``unknown_ticket``: a reference to a ticket the directory does not hold hits."""

from __future__ import annotations

from rule_context import MemoryDirectory, context, message, ticket

from worker.policy.rules.unknown_ticket import UnknownTicket

TAGGED = message(subject="Re: [Ticket#1001] still broken")


def test_missing_ticket_hits() -> None:
    verdict = UnknownTicket().check(context(TAGGED, directory=MemoryDirectory()))
    assert (verdict.hit, verdict.reason) == (True, "ticket 1001 does not exist")


def test_existing_ticket_misses_and_says_what_it_is() -> None:
    directory = MemoryDirectory((ticket(kind="customer_care", status="closed"),))
    verdict = UnknownTicket().check(context(TAGGED, directory=directory))
    assert (verdict.hit, verdict.reason) == (False, "ticket 1001 exists (customer_care, closed)")


def test_no_reference_misses() -> None:
    """Unreferenced mail is new_ticket's to judge, never this rule's."""
    assert not UnknownTicket().check(context()).hit
