"""``Decision``: the outcome of one message, with every field the SPEC promises.

The same object is what the log line carries, what ``--json`` prints, what the database row
stores (plus its chain position) and what the API will serve.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DECISIONS = (
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


@dataclass
class Decision:
    decision: str
    rule: str
    policy: str | None
    policy_sha256: str | None
    ticket: str | None
    reply: dict[str, str | None]
    message_id: str | None
    raw_sha256: str
    envelope_from: str
    recipients: list[str]
    received_at: datetime
    channel: str
    trace: list[dict[str, Any]]
    id: int | None = None
    seq: int | None = None
    duplicate_of: int | None = None
    outbox_ids: list[int] = field(default_factory=list)
    public_id: str | None = None  # the opaque reference in the SMTP answer

    def as_dict(self) -> dict[str, Any]:
        received = self.received_at.astimezone(UTC).isoformat(timespec="microseconds")
        return {
            "decision": self.decision,
            "rule": self.rule,
            "policy": self.policy,
            "policy_sha256": self.policy_sha256,
            "ticket": self.ticket,
            "reply": dict(self.reply),
            "message_id": self.message_id,
            "raw_sha256": self.raw_sha256,
            "envelope_from": self.envelope_from,
            "recipients": list(self.recipients),
            "received_at": received,
            "channel": self.channel,
            "trace": list(self.trace),
            "id": self.id,
            "seq": self.seq,
            "duplicate_of": self.duplicate_of,
            "public_id": self.public_id,
        }
