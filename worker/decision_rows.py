"""The rows a decision is written as: the decision row's fields (exactly what its audit
digest covers), its outbox rows, and where the chain stands while a batch is linked; the
recorder (``worker.recorder``) inserts them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from worker.decision import (
    Decision,
    OutboxItem,
    OutboxStatus,
    ReplyPlan,
    ReplyReason,
    ReplyStatus,
)


@dataclass
class Position:
    """Where the audit chain stands inside the batch being written."""

    seq: int
    digest: str


@dataclass
class Entry:
    """One decision about to be inserted: the row and the outbox items that go with it."""

    decision: Decision
    row: dict[str, Any]
    outbox: list[OutboxItem]
    now: datetime
    max_delivery: timedelta

    def outbox_rows(self, decision_id: int) -> list[dict[str, Any]]:
        return [outbox_row(decision_id, item, self.now, self.max_delivery) for item in self.outbox]

    def advance(self, position: Position, decision_id: int, outbox_ids: list[int]) -> Decision:
        """The inserted decision as callers see it; the chain now ends at its row."""
        position.seq, position.digest = self.row["seq"], self.row["digest"]
        decision = self.decision
        decision.id, decision.seq, decision.outbox_ids = decision_id, self.row["seq"], outbox_ids
        return decision


def rate_limited(decision: Decision) -> None:
    """A queued reply that lost its slot: no reply, so no reply language either (as the
    dry run records it, and as a reply known refused was planned without one)."""
    decision.reply = ReplyPlan(ReplyStatus.SUPPRESSED, ReplyReason.RATE_LIMITED)
    decision.reply_language = None
    decision.trace = [step for step in decision.trace if step.get("rule") != "reply_language"]


def decision_fields(
    decision: Decision, dedup_key: str | None, seq: int, now: datetime
) -> dict[str, Any]:
    """The decision row's columns, exactly the ones its audit digest covers."""
    return {
        "seq": seq,
        "dedup_key": dedup_key,
        "decision": decision.decision,
        "rule": decision.rule,
        "policy": decision.policy,
        "policy_sha256": decision.policy_sha256,
        "ticket": decision.ticket,
        "reply_status": str(decision.reply.status),
        "reply_reason": None if decision.reply.reason is None else str(decision.reply.reason),
        "message_id": decision.message_id,
        "raw_sha256": decision.raw_sha256,
        "envelope_from": decision.envelope_from,
        "recipients": decision.recipients,
        "received_at": decision.received_at,
        "decided_at": now,
        "channel": str(decision.channel),
        "trace": decision.trace,
        "duplicate_of": decision.duplicate_of,
    }


def outbox_row(
    decision_id: int, item: OutboxItem, now: datetime, max_delivery: timedelta
) -> dict[str, Any]:
    return {
        "decision_id": decision_id,
        "kind": str(item.kind),
        "mail_from": item.mail_from,
        "rcpt_to": item.rcpt_to,
        "message_id": item.message_id,
        "body": item.body,
        "status": str(OutboxStatus.QUEUED),
        "attempts": 0,
        "created_at": now,
        "next_attempt_at": now,
        "expires_at": now + max_delivery,
    }
