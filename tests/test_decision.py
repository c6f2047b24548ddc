"""The one list of names: decisions, rules, reply statuses, outbox kinds, and their helpers."""

from __future__ import annotations

import json

from worker.decision import (
    DECISIONS,
    REJECTIONS,
    SWITCHABLE_RULES,
    DecisionName,
    OutboxKind,
    ReplyStatus,
    RuleName,
    is_rejection,
)
from worker.policy.document import REPLY_DECISIONS
from worker.report import COLORS


def test_decision_names_are_the_specs() -> None:
    assert DECISIONS == (
        "accepted_followup",
        "rejected_new_ticket",
        "rejected_unknown_ticket",
        "rejected_closed_ticket",
        "rejected_unauthorized_sender",
        "rejected_language",
        "ignored_auto_generated",
        "duplicate",
        "quarantined",
        "held",
    )


def test_is_rejection_for_members_and_stored_strings() -> None:
    assert {name for name in DecisionName if name.is_rejection} == REJECTIONS
    assert is_rejection("rejected_language") and not is_rejection("accepted_followup")
    assert not is_rejection("rejected_something_else"), "a prefix is not a decision"


def test_names_serialise_as_their_plain_values() -> None:
    """Stored rows, JSON lines and log fields carry the value, never the member's repr."""
    assert json.dumps([DecisionName.DUPLICATE, ReplyStatus.QUEUED, OutboxKind.WEBHOOK]) == (
        '["duplicate", "queued", "webhook"]'
    )
    assert f"{RuleName.NEW_TICKET}" == "new_ticket"


def test_every_list_derives_from_the_enums() -> None:
    """Report colours cover every decision; replies exist only for rejections and follow-ups."""
    assert set(COLORS) == set(DecisionName)
    assert REJECTIONS | {DecisionName.ACCEPTED_FOLLOWUP} == REPLY_DECISIONS
    assert set(RuleName) > SWITCHABLE_RULES
