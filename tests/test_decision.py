"""The one list of names: decisions, rules, reply statuses, outbox kinds, and their helpers."""

from __future__ import annotations

import json

from worker.decision import (
    CHANNELS,
    DECISIONS,
    REJECTIONS,
    SWITCHABLE_RULES,
    UNDELIVERED,
    Channel,
    DecisionName,
    OutboxKind,
    OutboxStatus,
    ReplyPlan,
    ReplyReason,
    ReplyStatus,
    RuleName,
    is_rejection,
)
from worker.policy.document import REPLY_DECISIONS
from worker.replies import NOT_A_FOLLOWUP
from worker.report import COLORS
from worker.web.metrics import REPLY_STATES


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
    )


def test_is_rejection_for_members_and_stored_strings() -> None:
    assert {name for name in DecisionName if name.is_rejection} == REJECTIONS
    assert is_rejection("rejected_language") and not is_rejection("accepted_followup")
    assert not is_rejection("rejected_something_else"), "a prefix is not a decision"


def test_names_serialise_as_their_plain_values() -> None:
    """Stored rows, JSON lines and log fields carry the value, never the member's repr."""
    names = [DecisionName.DUPLICATE, ReplyStatus.QUEUED, OutboxKind.WEBHOOK, Channel.MILTER]
    names += [OutboxStatus.DEAD, ReplyReason.RATE_LIMITED]
    assert (
        json.dumps(names) == '["duplicate", "queued", "webhook", "milter", "dead", "rate_limited"]'
    )

    assert f"{RuleName.NEW_TICKET}" == "new_ticket"


def test_every_list_derives_from_the_enums() -> None:
    """Report colours cover every decision; replies exist only for rejections and follow-ups."""
    assert set(COLORS) == set(DecisionName)
    assert REJECTIONS | {DecisionName.ACCEPTED_FOLLOWUP} == REPLY_DECISIONS
    assert set(RuleName) > SWITCHABLE_RULES


def test_channels_are_the_specs() -> None:
    assert CHANNELS == ("smtp", "lmtp", "milter", "imap", "pipe", "replay")


def test_every_decision_with_a_reply_has_its_rate_limit_reason() -> None:
    """A queued reply's reason is its rate-limit slot: the decision, or the twins' shared one."""
    for decision in REPLY_DECISIONS - set(NOT_A_FOLLOWUP):
        assert ReplyReason(decision) == decision
    assert ReplyReason.REJECTED_NOT_A_FOLLOWUP not in set(DecisionName)


def test_reply_object_keeps_the_address_out() -> None:
    """``Decision.reply`` is the plan; its JSON form is the SPEC's status and reason only."""
    plan = ReplyPlan(ReplyStatus.QUEUED, ReplyReason.REJECTED_NEW_TICKET, "alice@example.com")
    assert plan.as_dict() == {"status": "queued", "reason": "rejected_new_ticket"}
    assert ReplyPlan(ReplyStatus.SUPPRESSED, None).as_dict()["reason"] is None


def test_outbox_states_are_one_list() -> None:
    """The metrics export every state; a dispatcher picks up exactly the undelivered ones."""
    assert set(REPLY_STATES) == set(OutboxStatus)
    assert set(UNDELIVERED) == {"queued", "sending", "retry"}
