"""``suspected_bounce``: unreferenced mail that reads like a notice hits; a referenced one never."""

from __future__ import annotations

import pytest
from rule_context import MemoryDirectory, context, message, ticket

from worker.policy.rules.suspected_bounce import SuspectedBounce


@pytest.mark.parametrize(
    "subject",
    [
        "Undeliverable: my PBX",
        "Out of Office: back Monday",
        "Unzustellbar: Ihre Nachricht",
        "Mail delivery failed: returning message to sender",
        "DELIVERY FAILURE: User alice not listed",
        "Vacation",
        "Out of Office AutoReply: PBX down",
        "Please verify your email address",
    ],
)
def test_subject_like_a_notice_hits(subject: str) -> None:
    verdict = SuspectedBounce().check(context(message(subject=subject)))
    assert verdict.hit
    assert verdict.reason.startswith("subject reads like an automatic notice")


def test_sender_name_like_a_mail_system_hits() -> None:
    raw = message(From="Mail Delivery System <alice@customer.example>")
    verdict = SuspectedBounce().check(context(raw))
    assert verdict.hit
    assert verdict.reason == "sender name reads like a mail system ('Mail Delivery')"


def test_followup_mentioning_a_failure_misses() -> None:
    """A customer's follow-up on a ticket is judged by the later rules, whatever it says."""
    raw = message(subject="Re: [Ticket#1001] delivery failed again")
    verdict = SuspectedBounce().check(context(raw, directory=MemoryDirectory((ticket(),))))
    assert (verdict.hit, verdict.reason) == (False, "refers to a ticket")


@pytest.mark.parametrize(
    "subject",
    [
        "Vacation request for the switchboard team",
        "Absence of dial tone on all lines",
        "Out of office hours support for our PBX",
        "Please verify my licence",
        "Delivery failed for order 4411 (W-AIR base)",
        "Not delivered yet: the phones we ordered",
    ],
)
def test_subjects_people_write_miss(subject: str) -> None:
    """Words a mail system uses, in the places a person uses them, are not a sign."""
    verdict = SuspectedBounce().check(context(message(subject=subject)))
    assert (verdict.hit, verdict.reason) == (False, "reads like a person's message")


def test_a_persons_new_request_misses() -> None:
    verdict = SuspectedBounce().check(context())
    assert (verdict.hit, verdict.reason) == (False, "reads like a person's message")
