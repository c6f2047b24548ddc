"""Held mail: the queue operators work through, their actions on it, and the hold expiry.

A message a policy holds (``[actions]`` says ``hold``) or quarantines waits here until an
operator **releases** it (recorded as ``accepted_followup`` and delivered through the outbox
like any follow-up, optionally adding the sender to the ticket), **rejects** it (the rule's
own decision and reply, sent now) or **discards** it (the rule's decision, no reply); a held
message nobody acted on gets its rule's decision and reply after the policy's
``hold_days``. Each is a new record in the decision chain pointing to the first
(``acts_on``), with the operator's name and reason in its trace; the first record is never
edited. ``Recorder.record_action`` makes each message acted on once across replicas: a
second action raises ``Conflict`` (the API's ``409``) and changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import Any

import structlog
from sqlalchemy import exists, func, select
from sqlmodel import Session, col

from worker.clock import aware, utcnow
from worker.decision import Channel, Decision, DecisionName, ReplyReason, RuleName
from worker.errors import Conflict, InputError
from worker.mail import Envelope
from worker.periodic import every
from worker.pipeline import Mailgate
from worker.policy.chain import ChainResult, decision_of
from worker.policy.document import DEFAULT_HOLD_DAYS
from worker.store.models import DecisionRow, Ticket
from worker.store.repository import load_raw

log = structlog.get_logger("mailgate.held")
ACTIONABLE = (DecisionName.HELD, DecisionName.QUARANTINED)
EXPIRY_INTERVAL = 300.0  # seconds; holds last days, a few minutes late is nothing
MAX_REASON = 500
PAST = {"release": "released", "reject": "rejected", "discard": "discarded"}


class HeldAction(StrEnum):
    RELEASE = "release"
    REJECT = "reject"
    DISCARD = "discard"


@dataclass(frozen=True)
class HeldItem:
    """One message waiting for an operator: what the queue shows, no content."""

    id: int
    public_id: str | None
    decision: str
    rule: str
    policy: str | None
    ticket: str | None
    envelope_from: str
    recipients: list[str]
    received_at: datetime
    decided_at: datetime
    expires_at: datetime | None  # quarantined mail waits until someone acts

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "public_id": self.public_id,
            "decision": self.decision,
            "rule": self.rule,
            "policy": self.policy,
            "ticket": self.ticket,
            "envelope_from": self.envelope_from,
            "recipients": list(self.recipients),
            "received_at": self.received_at.isoformat(),
            "decided_at": self.decided_at.isoformat(),
            "expires_at": self.expires_at.isoformat() if self.expires_at else None,
        }


DECISION = DecisionRow.__table__  # type: ignore[attr-defined]
_ACTION = DECISION.alias("action")
_WAITING = (
    DECISION.c.decision.in_([str(name) for name in ACTIONABLE]),
    DECISION.c.acts_on.is_(None),
    ~exists().where(_ACTION.c.acts_on == DECISION.c.id),
)


def held_queue(gate: Mailgate, limit: int = 1000) -> list[HeldItem]:
    """Held and quarantined messages nobody has acted on yet, oldest first."""
    statement = select(DECISION).where(*_WAITING).order_by(DECISION.c.seq).limit(limit)
    with Session(gate.read_engine) as session:
        rows = session.connection().execute(statement).all()
    return [_item(gate, row) for row in rows]


def held_summary(session: Session) -> tuple[int, datetime | None]:
    """How many messages are held (not quarantined) for an operator, and the oldest's time."""
    held = DECISION.c.decision == str(DecisionName.HELD)
    count, oldest = (
        session.connection()
        .execute(select(func.count(), func.min(DECISION.c.decided_at)).where(held, *_WAITING[1:]))
        .one()
    )
    return int(count), aware(oldest) if oldest else None


def _item(gate: Mailgate, row: Any) -> HeldItem:
    expires = None
    if row.decision == DecisionName.HELD:
        policy = gate.policies.by_id(row.policy or "")
        days = policy.document.hold_days if policy else DEFAULT_HOLD_DAYS
        expires = aware(row.decided_at) + timedelta(days=days)
    return HeldItem(
        id=row.id,
        public_id=row.public_id,
        decision=row.decision,
        rule=row.rule,
        policy=row.policy,
        ticket=row.ticket,
        envelope_from=row.envelope_from,
        recipients=list(row.recipients),
        received_at=aware(row.received_at),
        decided_at=aware(row.decided_at),
        expires_at=expires,
    )


class NotFound(InputError):
    """No decision has that public id (HTTP 404)."""


def find_message(session: Session, public_id: str) -> DecisionRow:
    """The decision a public id names; ``NotFound`` when there is none."""
    row = session.scalars(
        select(DecisionRow).where(col(DecisionRow.public_id) == public_id)
    ).first()
    if row is None:
        raise NotFound(f"no message {public_id!r}")
    return row


def act(
    gate: Mailgate,
    public_id: str,
    action: HeldAction,
    operator: str,
    reason: str = "",
    add_participant: bool = False,
) -> Decision:
    """Release, reject or discard a held or quarantined message, once; the new record."""
    reason = " ".join(reason.split())[:MAX_REASON]
    with Session(gate.read_engine) as session:
        row = find_message(session, public_id)
        _check_waiting(session, row, public_id)
        raw = load_raw(session, row.raw_sha256)
    if raw is None:
        raise InputError(f"message {public_id}: its raw bytes are no longer kept")
    if add_participant and (action != HeldAction.RELEASE or not row.envelope_from):
        raise InputError("--add-participant goes with release, for a message with a sender")
    target = _outcome(row, action)
    said = f"{PAST[action.value]} by {operator}" + (f": {reason}" if reason else "")
    step = {
        "rule": str(RuleName.OPERATOR),
        "hit": True,
        "reason": f"{said} (record #{row.id})",
        "operator": operator,
        "action": str(action),
        "acts_on": row.id,
        "add_participant": add_participant,
    }
    result = ChainResult(target, RuleName.OPERATOR, [step])
    silent = ReplyReason.DISCARDED if action == HeldAction.DISCARD else None
    pending = gate.redecide(raw, _envelope(row), result, silent_reason=silent)
    alongside = _participant_adder(row) if add_participant else None
    assert row.id is not None
    return gate.record_action(pending, row.id, alongside)


def _check_waiting(session: Session, row: DecisionRow, public_id: str) -> None:
    """``Conflict`` naming what happened already when the message is not waiting."""
    if row.decision not in ACTIONABLE or row.acts_on is not None:
        raise Conflict(f"message {public_id} is {row.decision}, not held or quarantined")
    earlier = (
        session.connection()
        .execute(
            select(
                DECISION.c.decision, DECISION.c.rule, DECISION.c.trace, DECISION.c.decided_at
            ).where(DECISION.c.acts_on == row.id)
        )
        .first()
    )
    if earlier is not None:
        # The operator's step, wherever later steps (the reply language) put it.
        step: dict[str, Any] = next((s for s in earlier.trace or [] if s.get("operator")), {})
        who = step.get("operator") or "the hold expiry"
        raise Conflict(
            f"message {public_id} was already acted on by {who} at "
            f"{aware(earlier.decided_at).isoformat(timespec='seconds')}: {earlier.decision}"
        )


def _outcome(row: DecisionRow, action: HeldAction) -> DecisionName:
    """Release accepts; reject and discard take the holding rule's own decision (for
    quarantined mail that is ``quarantined`` again: the quarantine has no reply)."""
    if action == HeldAction.RELEASE:
        return DecisionName.ACCEPTED_FOLLOWUP
    if row.decision == DecisionName.HELD:
        decided = decision_of(row.rule)
        if decided is not None:
            return decided
    return DecisionName.QUARANTINED


def _envelope(row: DecisionRow) -> Envelope:
    return Envelope(
        mail_from=row.envelope_from,
        rcpt_tos=tuple(row.recipients),
        channel=Channel(row.channel),
        received_at=aware(row.received_at),
    )


def _participant_adder(row: DecisionRow) -> Callable[[Session], None]:
    """Adds the sender to the ticket inside the action's transaction (all or nothing)."""
    sender = row.envelope_from.lower()

    def add(session: Session) -> None:
        ticket = session.get(Ticket, row.ticket or "") if row.ticket else None
        if ticket is None:
            raise InputError(f"ticket {row.ticket or '(none)'} is not in the ticket directory")
        if sender not in ticket.participants:
            ticket.participants = [*ticket.participants, sender]
            ticket.updated_at = utcnow()
            session.add(ticket)
            session.flush()

    return add


# -- expiry -------------------------------------------------------------------------------


def expire_held(gate: Mailgate, now: datetime | None = None) -> int:
    """Give every held message past its ``hold_days`` its rule's own decision and reply;
    a message another replica (or an operator) got to first is skipped. How many expired."""
    now = now or utcnow()
    expired = 0
    for item in held_queue(gate):
        if item.expires_at is None or item.expires_at > now:
            continue
        try:
            _expire(gate, item)
        except Conflict:
            continue
        except InputError as exc:  # its bytes are gone: it stays for an operator to discard
            log.warning("hold_expiry_skipped", id=item.id, problem=str(exc))
            continue
        expired += 1
    if expired:
        log.info("held_expired", messages=expired)
    return expired


def _expire(gate: Mailgate, item: HeldItem) -> Decision:
    with Session(gate.read_engine) as session:
        row = session.get(DecisionRow, item.id)
        assert row is not None
        raw = load_raw(session, row.raw_sha256)
    if raw is None:
        raise InputError(f"message {item.public_id}: its raw bytes are no longer kept")
    step = {
        "rule": str(RuleName.HOLD_EXPIRED),
        "hit": True,
        "reason": f"nobody acted within the hold (until {item.expires_at}); record #{item.id}",
        "acts_on": item.id,
    }
    result = ChainResult(_outcome(row, HeldAction.REJECT), RuleName.HOLD_EXPIRED, [step])
    return gate.record_action(gate.redecide(raw, _envelope(row), result), item.id)


async def expiry_loop(
    gate: Mailgate, stopping: asyncio.Event, interval: float = EXPIRY_INTERVAL
) -> None:
    """Expire held mail now, then every ``interval`` seconds, until ``stopping`` is set."""
    await every(interval, stopping, partial(expire_held, gate), "hold_expiry_failed")
