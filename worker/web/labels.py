"""Words for people: what the console shows instead of decision, rule and reply names.

The stored names (``rejected_new_ticket``, ``suppressed``/``rate_limited``) stay in the API
and the logs, where scripts and auditors read them; the console shows these labels, with
the stored name in a tooltip. Every ``DecisionName``, ``RuleName``, ``OutboxStatus`` and
suppressing ``ReplyReason`` has a label (a test holds the lists together); a name added
later and not yet labelled reads as itself.
"""

from __future__ import annotations

import re
from typing import Any

from worker.decision import DecisionName, OutboxStatus, ReplyReason, RuleName

DECISIONS: dict[str, str] = {
    DecisionName.ACCEPTED_FOLLOWUP: "Follow-up accepted",
    DecisionName.REJECTED_NEW_TICKET: "Rejected: new ticket by email",
    DecisionName.REJECTED_UNKNOWN_TICKET: "Rejected: not a follow-up",
    DecisionName.REJECTED_CLOSED_TICKET: "Rejected: ticket closed",
    DecisionName.REJECTED_UNAUTHORIZED_SENDER: "Rejected: not a participant",
    DecisionName.REJECTED_LANGUAGE: "Rejected: not in English",
    DecisionName.IGNORED_AUTO_GENERATED: "Ignored: automatic mail",
    DecisionName.DUPLICATE: "Duplicate",
    DecisionName.QUARANTINED: "Quarantined",
    DecisionName.HELD: "Held for review",
}
# The chart's few colours: each decision falls in one group.
GROUPS: dict[str, str] = {
    DecisionName.ACCEPTED_FOLLOWUP: "accepted",
    DecisionName.IGNORED_AUTO_GENERATED: "ignored",
    DecisionName.DUPLICATE: "ignored",
    DecisionName.QUARANTINED: "quarantined",
    DecisionName.HELD: "held",
}
RULES: dict[str, str] = {
    RuleName.TICKET_REFERENCE: "ticket reference",
    RuleName.DUPLICATE: "already decided",
    RuleName.POLICY_IN_FORCE: "no policy in force",
    RuleName.AUTO_GENERATED: "automatic mail",
    RuleName.QUARANTINE: "unreadable or suspicious",
    RuleName.SUSPECTED_BOUNCE: "looks like a bounce",
    RuleName.NEW_TICKET: "no ticket reference",
    RuleName.UNKNOWN_TICKET: "ticket not found",
    RuleName.UNAUTHORIZED_SENDER: "sender not on the ticket",
    RuleName.CLOSED_TICKET: "ticket closed",
    RuleName.LANGUAGE: "language",
    RuleName.FOLLOWUP: "follow-up",
    RuleName.OPERATOR: "an operator's action",
    RuleName.HOLD_EXPIRED: "nobody decided in time",
}
DELIVERY: dict[str, str] = {
    OutboxStatus.SENT: "Reply sent",
    OutboxStatus.SPOOLED: "Reply written to the outbox folder",
    OutboxStatus.QUEUED: "Reply waiting to go out",
    OutboxStatus.SENDING: "Reply being sent",
    OutboxStatus.RETRY: "Reply retrying",
    OutboxStatus.FAILED: "Reply refused by the relay",
    OutboxStatus.DEAD: "Reply given up",
}
# Why a decision got no reply ("No reply: …"); the queued reasons need no words of their own.
NO_REPLY: dict[str, str] = {
    ReplyReason.AUTO_GENERATED: "automatic mail",
    ReplyReason.DUPLICATE: "already answered",
    ReplyReason.QUARANTINED: "quarantined",
    ReplyReason.NO_REPLY_FOR_DECISION: "none needed",
    ReplyReason.REPLAY: "replayed",
    ReplyReason.NULL_SENDER: "no return address",
    ReplyReason.X_AUTO_RESPONSE_SUPPRESS: "sender asked for none",
    ReplyReason.NO_SUPPORT_RECIPIENT: "not sent to support",
    ReplyReason.NOT_ADDRESSED_TO_SUPPORT: "support only in copy",
    ReplyReason.UNAUTHENTICATED_SENDER: "sender not authenticated",
    ReplyReason.SPAM: "spam",
    ReplyReason.RATE_LIMITED: "one sent recently",
    ReplyReason.REJECT_MODE_SMTP: "refused during delivery",
    ReplyReason.DISCARDED: "discarded by an operator",
    ReplyReason.HELD: "held for review",
}
QUEUED_REASONS = frozenset(
    {
        ReplyReason.ACCEPTED_FOLLOWUP,
        ReplyReason.REJECTED_NEW_TICKET,
        ReplyReason.REJECTED_CLOSED_TICKET,
        ReplyReason.REJECTED_LANGUAGE,
        ReplyReason.REJECTED_NOT_A_FOLLOWUP,
    }
)


ACTIONS = {"release": "released", "reject": "rejected", "discard": "discarded"}
# worker.held writes "<action> by <operator>[: <reason>] (record #<id>)"; names hold no ": ".
_GIVEN_REASON = re.compile(r"^\S+ by \S+?(?:: (.*))? \(record #\d+\)$", re.S)


def decision_label(name: str) -> str:
    return DECISIONS.get(name, name)


def decision_group(name: str) -> str:
    return "rejected" if name.startswith("rejected_") else GROUPS.get(name, "other")


def reply_label(status: str, reason: str | None, delivery: str | None) -> str:
    """One phrase for the reply column: what happened to the answer the sender gets."""
    if status == "smtp_rejected":
        return "Refused during delivery (SMTP 550)"
    if status == "suppressed":
        return "No reply: " + NO_REPLY.get(reason or "", reason or "suppressed")
    if delivery is None:
        return "Reply planned"
    return DELIVERY.get(delivery, f"Reply {delivery}")


def labels_for_row(
    decision: str,
    rule: str,
    status: str,
    reason: str | None,
    delivery: str | None,
    trace: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    return {
        "decision": decision_label(decision),
        "group": decision_group(decision),
        "rule": why(rule, trace or []),
        "reply": reply_label(status, reason, delivery),
    }


def why(rule: str, trace: list[dict[str, Any]]) -> str:
    """The rule's label; for an operator's record, who did what ("released by ana: …"),
    built from the step's fields rather than its sentence."""
    # The operator's step, wherever later steps (the reply language) put it.
    step = next((s for s in trace if s.get("operator")), {})
    if rule != RuleName.OPERATOR or not step.get("operator"):
        return RULES.get(rule, rule)
    action = str(step.get("action") or "")
    said = f"{ACTIONS.get(action, action)} by {step['operator']}"
    given = _GIVEN_REASON.match(str(step.get("reason") or ""))
    return said + (f": {given.group(1)}" if given and given.group(1) else "")


def page_labels() -> dict[str, Any]:
    """What the page needs to label the chart and the filter: decisions and their groups."""
    names = list(dict.fromkeys([*DecisionName, *DECISIONS]))
    return {
        "decisions": {name: decision_label(name) for name in names},
        "groups": {name: decision_group(name) for name in names},
        "rules": {str(name): label for name, label in RULES.items()},
    }
