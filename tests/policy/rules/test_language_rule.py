"""``language``: from April 2022 a Customer Care follow-up in another language hits."""

from __future__ import annotations

from datetime import UTC, datetime

from helpers import fixture_bytes
from rule_context import MemoryDirectory, context, message, ticket

from worker.policy.rules.language import LanguageRule

CARE = MemoryDirectory(
    (ticket("2002", kind="customer_care", participants=("carla@customer.example",)),)
)
ITALIAN = fixture_bytes("followup_customer_care_it.eml")


def test_italian_customer_care_followup_hits() -> None:
    verdict = LanguageRule().check(
        context(ITALIAN, sender="carla@customer.example", directory=CARE)
    )
    assert verdict.hit
    assert verdict.reason.startswith("written in it (") and verdict.reason.endswith("accepted: en")


def test_english_above_italian_history_misses() -> None:
    raw = fixture_bytes("followup_customer_care_en.eml")
    verdict = LanguageRule().check(context(raw, sender="carla@customer.example", directory=CARE))
    assert not verdict.hit and verdict.reason.startswith("written in en")


def test_technical_tickets_are_not_judged() -> None:
    directory = MemoryDirectory((ticket("2002", kind="technical"),))
    verdict = LanguageRule().check(context(ITALIAN, directory=directory))
    assert (verdict.hit, verdict.reason) == (False, "not required for technical tickets")


def test_2018_policy_does_not_require_a_language() -> None:
    at = datetime(2020, 1, 1, tzinfo=UTC)
    verdict = LanguageRule().check(
        context(ITALIAN, directory=CARE, policy_id="wildix-2018-06", at=at)
    )
    assert (verdict.hit, verdict.reason) == (False, "not required by policy wildix-2018-06")


def test_too_little_text_is_given_the_benefit_of_the_doubt() -> None:
    raw = message(subject="Re: [Ticket#2002] grazie", body="Grazie!")
    verdict = LanguageRule().check(context(raw, directory=CARE))
    assert not verdict.hit and verdict.reason.startswith("too little text to judge")
