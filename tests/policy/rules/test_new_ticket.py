"""``new_ticket``: mail that refers to no ticket hits (the June 2018 rule)."""

from __future__ import annotations

from rule_context import TOKENS, context, message

from worker.policy.rules.new_ticket import NewTicket


def test_no_reference_hits() -> None:
    verdict = NewTicket().check(context())
    assert (verdict.hit, verdict.reason) == (
        True,
        "no ticket reference: new tickets are opened in WMP",
    )


def test_subject_tag_misses() -> None:
    """A tag names a ticket even when the ticket does not exist: that is unknown_ticket's."""
    verdict = NewTicket().check(context(message(subject="Re: [Ticket#0777] hello")))
    assert (verdict.hit, verdict.reason) == (False, "refers to ticket 777")


def test_signed_reply_address_misses() -> None:
    address = TOKENS.reply_address("1001", "support", "wildix.com")
    verdict = NewTicket().check(context(message(To=address), rcpt=(address,)))
    assert (verdict.hit, verdict.reason) == (False, "refers to ticket 1001")
