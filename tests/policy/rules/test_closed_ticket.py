"""``closed_ticket``: a ticket closed longer ago than the reopen window hits."""

from __future__ import annotations

from rule_context import MemoryDirectory, context, days_ago, message, ticket

from worker.policy.rules.closed_ticket import ClosedTicket

TAGGED = message(subject="Re: [Ticket#1001] one more thing")


def judge(**fields: object) -> tuple[bool, str]:
    directory = MemoryDirectory((ticket(**fields),))  # type: ignore[arg-type]
    verdict = ClosedTicket().check(context(TAGGED, directory=directory))
    return verdict.hit, verdict.reason


def test_open_ticket_misses() -> None:
    assert judge() == (False, "ticket is open")


def test_closed_within_the_window_misses() -> None:
    """The 2022 policy reopens within 14 days."""
    hit, reason = judge(status="closed", closed_at=days_ago(13))
    assert not hit and reason.endswith("within the 14-day reopen window")


def test_closed_beyond_the_window_hits() -> None:
    hit, reason = judge(status="closed", closed_at=days_ago(15))
    assert hit and reason.endswith("beyond the 14-day reopen window")


def test_closed_at_an_unknown_date_hits() -> None:
    assert judge(status="closed", closed_at=None) == (
        True,
        "closed since an unknown date, beyond the 14-day reopen window",
    )
