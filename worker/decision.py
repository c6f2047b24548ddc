"""``Decision`` and the data that travels with it, plus the one list of every name it uses.

The same ``Decision`` is what the log line carries, what ``--json`` prints, what the database
row stores (plus its chain position) and what the API serves. Decision names, rule names,
channels, reply statuses and reasons, outbox kinds and outbox row states are spelled here
once, as ``StrEnum`` members (stored as their values); the CLI, the dashboard, the report
and the metrics take their lists from these enums. ``ReplyPlan``,
``OutboxItem`` and ``Pending`` are the data ``decide`` hands to ``record``: data only, so
that the pipeline and the recorder can share them without importing each other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from worker.outbox_items import LateReply


class DecisionName(StrEnum):
    """Every decision a message can get (SPEC "Decisions"); stored as its value."""

    ACCEPTED_FOLLOWUP = "accepted_followup"
    REJECTED_NEW_TICKET = "rejected_new_ticket"
    REJECTED_UNKNOWN_TICKET = "rejected_unknown_ticket"
    REJECTED_CLOSED_TICKET = "rejected_closed_ticket"
    REJECTED_UNAUTHORIZED_SENDER = "rejected_unauthorized_sender"
    REJECTED_LANGUAGE = "rejected_language"
    IGNORED_AUTO_GENERATED = "ignored_auto_generated"
    DUPLICATE = "duplicate"
    QUARANTINED = "quarantined"
    HELD = "held"

    @property
    def is_rejection(self) -> bool:
        return self in REJECTIONS


REJECTIONS = frozenset(
    {
        DecisionName.REJECTED_NEW_TICKET,
        DecisionName.REJECTED_UNKNOWN_TICKET,
        DecisionName.REJECTED_CLOSED_TICKET,
        DecisionName.REJECTED_UNAUTHORIZED_SENDER,
        DecisionName.REJECTED_LANGUAGE,
    }
)
DECISIONS: tuple[str, ...] = tuple(DecisionName)


def is_rejection(name: str) -> bool:
    """Whether a decision name, as stored or typed, is one of the rejections."""
    return name in REJECTIONS


class RuleName(StrEnum):
    """Every name a trace step or a decision's ``rule`` may carry; old traces keep them."""

    TICKET_REFERENCE = "ticket_reference"
    DUPLICATE = "duplicate"
    POLICY_IN_FORCE = "policy_in_force"
    AUTO_GENERATED = "auto_generated"
    QUARANTINE = "quarantine"
    SUSPECTED_BOUNCE = "suspected_bounce"
    NEW_TICKET = "new_ticket"
    UNKNOWN_TICKET = "unknown_ticket"
    UNAUTHORIZED_SENDER = "unauthorized_sender"
    CLOSED_TICKET = "closed_ticket"
    LANGUAGE = "language"
    FOLLOWUP = "followup"
    # Records that act on an earlier decision (SPEC "Held mail and operators").
    OPERATOR = "operator"
    HOLD_EXPIRED = "hold_expired"


# A policy may switch these rules' actions off (SPEC "per-rule actions"). The others keep
# the guarantees every policy relies on: never decide twice, never answer a robot, never
# accept mail without a ticket that exists.
SWITCHABLE_RULES = frozenset(
    {
        RuleName.SUSPECTED_BOUNCE,
        RuleName.UNAUTHORIZED_SENDER,
        RuleName.CLOSED_TICKET,
        RuleName.LANGUAGE,
    }
)


# A policy may hold a message instead of these rules' decisions, for an operator to
# overturn: the hits a person might judge differently (SPEC "Held mail and operators").
HOLDABLE_RULES = frozenset(
    {
        RuleName.UNKNOWN_TICKET,
        RuleName.UNAUTHORIZED_SENDER,
        RuleName.CLOSED_TICKET,
        RuleName.LANGUAGE,
        RuleName.SUSPECTED_BOUNCE,
        RuleName.QUARANTINE,
    }
)
# Held together or not at all: holding one and rejecting the other would tell a stranger
# whether the ticket number exists.
HOLD_TWINS = frozenset({RuleName.UNKNOWN_TICKET, RuleName.UNAUTHORIZED_SENDER})


class Channel(StrEnum):
    """The transport a message came in by (SPEC: a decision's ``channel``)."""

    SMTP = "smtp"
    LMTP = "lmtp"
    MILTER = "milter"
    IMAP = "imap"
    PIPE = "pipe"
    REPLAY = "replay"


CHANNELS: tuple[str, ...] = tuple(Channel)


class ReplyStatus(StrEnum):
    """What became of the automatic reply a decision might get."""

    QUEUED = "queued"  # subject to the rate limit at commit
    SUPPRESSED = "suppressed"
    SMTP_REJECTED = "smtp_rejected"  # MAILGATE_REJECT_MODE=smtp: the 550 was the answer


class ReplyReason(StrEnum):
    """Why a reply is queued (the rate-limit slot it takes) or why there is none."""

    # Queued: one reply per (sender, reason) per window.
    ACCEPTED_FOLLOWUP = "accepted_followup"  # a policy's optional acknowledgement
    REJECTED_NEW_TICKET = "rejected_new_ticket"
    REJECTED_CLOSED_TICKET = "rejected_closed_ticket"
    REJECTED_LANGUAGE = "rejected_language"
    # Unknown ticket and unauthorized sender share one face and one slot (worker.replies).
    REJECTED_NOT_A_FOLLOWUP = "rejected_not_a_followup"
    # A held message's acknowledgement: one slot whichever rule held it (worker.held).
    HELD = "held"
    # Suppressed, and why.
    AUTO_GENERATED = "auto_generated"
    DUPLICATE = "duplicate"
    QUARANTINED = "quarantined"
    NO_REPLY_FOR_DECISION = "no_reply_for_decision"
    REPLAY = "replay"
    NULL_SENDER = "null_sender"
    X_AUTO_RESPONSE_SUPPRESS = "x_auto_response_suppress"
    NO_SUPPORT_RECIPIENT = "no_support_recipient"
    NOT_ADDRESSED_TO_SUPPORT = "not_addressed_to_support"
    UNAUTHENTICATED_SENDER = "unauthenticated_sender"
    SPAM = "spam"
    RATE_LIMITED = "rate_limited"
    REJECT_MODE_SMTP = "reject_mode_smtp"  # with ReplyStatus.SMTP_REJECTED
    DISCARDED = "discarded"  # an operator discarded a held or quarantined message


class OutboxKind(StrEnum):
    """What an outbox row carries."""

    AUTO_REPLY = "auto_reply"
    FORWARD_MAIL = "forward_mail"
    WEBHOOK = "webhook"
    HELPDESK = "helpdesk"  # an accepted follow-up into its ticket (worker.helpdesk.delivery)


class OutboxStatus(StrEnum):
    """Where an outbox row stands; a row moves forward only."""

    QUEUED = "queued"  # committed with its decision, not yet tried
    SENDING = "sending"  # a dispatcher took it (left so by a crash: tried again)
    RETRY = "retry"  # a temporary failure; next_attempt_at says when
    SENT = "sent"  # the relay or the webhook took it
    SPOOLED = "spooled"  # no relay: written to <data dir>/outbox/ as an .eml file
    FAILED = "failed"  # refused for good
    DEAD = "dead"  # still undelivered at its maximum delivery age


# Rows a dispatcher still has to hand on.
UNDELIVERED: tuple[OutboxStatus, ...] = (
    OutboxStatus.QUEUED,
    OutboxStatus.SENDING,
    OutboxStatus.RETRY,
)


@dataclass(frozen=True)
class ReplyLanguage:
    """The language a reply is written in (a shipped one), and why it was chosen."""

    language: str
    reason: str
    by_default: bool = False  # nothing in the message said which: English

    def trace_step(self) -> dict[str, Any]:
        """As a trace step after the chain's (a hit: the message said which language)."""
        return {"rule": "reply_language", "hit": not self.by_default, "reason": self.reason}


@dataclass(frozen=True)
class ReplyPlan:
    """Whether a decision gets an automatic reply, why (not), and to whom."""

    status: ReplyStatus
    reason: ReplyReason | None
    recipient: str | None = None
    language: ReplyLanguage | None = None  # of the reply, or of the 550 text

    def as_dict(self) -> dict[str, str | None]:
        """The ``reply`` object of a decision: status and reason; the address stays out."""
        return {
            "status": str(self.status),
            "reason": None if self.reason is None else str(self.reason),
        }


@dataclass(frozen=True)
class OutboxItem:
    """One message to hand on after commit: an automatic reply, a forward, a webhook."""

    kind: OutboxKind
    mail_from: str
    rcpt_to: str
    message_id: str
    body: bytes


@dataclass
class Decision:
    decision: str
    rule: str
    policy: str | None
    policy_sha256: str | None
    ticket: str | None
    reply: ReplyPlan
    message_id: str | None
    raw_sha256: str
    envelope_from: str
    recipients: list[str]
    received_at: datetime
    channel: Channel
    trace: list[dict[str, Any]]
    id: int | None = None
    seq: int | None = None
    duplicate_of: int | None = None
    outbox_ids: list[int] = field(default_factory=list)
    # For a duplicate: the name of the decision it repeats, so that a transport (IMAP moving
    # it to its folder) needs no query. Not stored: ``duplicate_of`` points at the row.
    original_decision: str | None = None
    public_id: str | None = None  # the opaque reference in the SMTP answer
    # The language of the reply or the in-dialogue 550 text; not stored (the trace has it).
    reply_language: str | None = None

    def as_dict(self) -> dict[str, Any]:
        received = self.received_at.astimezone(UTC).isoformat(timespec="microseconds")
        return {
            "decision": self.decision,
            "rule": self.rule,
            "policy": self.policy,
            "policy_sha256": self.policy_sha256,
            "ticket": self.ticket,
            "reply": self.reply.as_dict(),
            "message_id": self.message_id,
            "raw_sha256": self.raw_sha256,
            "envelope_from": self.envelope_from,
            "recipients": list(self.recipients),
            "received_at": received,
            "channel": str(self.channel),
            "trace": list(self.trace),
            "id": self.id,
            "seq": self.seq,
            "duplicate_of": self.duplicate_of,
            "public_id": self.public_id,
        }


@dataclass
class Pending:
    """A decision not yet recorded, with what ``record`` needs to write alongside it."""

    decision: Decision
    dedup_key: str | None  # None for a duplicate: only the first decision holds the key
    raw: bytes | bytearray
    outbox: list[OutboxItem]
    window: timedelta
    max_delivery: timedelta
    # A queued reply whose slot this process saw taken is not built before the commit:
    # built from this, should the ledger's claim be won after all (``worker.reply_slots``).
    late_reply: LateReply | None = None
