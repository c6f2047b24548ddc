"""Recording decisions: one transaction per batch, so that ``250`` means committed *and*
throughput grows with the number of concurrent sessions (group commit).

Each decision in a batch is appended inside its own savepoint: the raw message, the reply
ledger claim, the decision row with its audit-chain link, and its outbox rows. A message
already decided (the unique ``dedup_key`` refuses it, whether the earlier decision was
committed long ago or is a few rows up in the same batch) is rolled back to its savepoint
and appended again as ``duplicate``. The batch commits once, with one fsync; only then is
any caller answered. If the commit fails, every caller in the batch gets the error and
nothing of the batch exists, so each sender retries.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy.exc
from sqlalchemy import Engine, insert, update
from sqlmodel import Session, SQLModel

from worker.audit import row_digest
from worker.clock import utcnow
from worker.decision import Decision
from worker.errors import TransientError
from worker.public_id import new_public_id
from worker.replies import ReplyPlan
from worker.store.db import transaction, writer_turn
from worker.store.repository import StoreDirectory, claim_reply_slot, lock_chain_head, store_raw

if TYPE_CHECKING:
    from worker.pipeline import Pending

MAX_BATCH = 64


class _AlreadyDecided(Exception):
    """The unique constraint on ``dedup_key`` found an earlier decision of this message."""


class Recorder:
    """Writes pending decisions; ``start()`` turns on the group-commit thread."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._queue: queue.Queue[tuple[Pending, Future[Decision]]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.recorded = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
            self._thread.start()

    def record(self, pending: Pending) -> Decision:
        if self._thread is None:
            return self.record_many([pending])[0]
        future: Future[Decision] = Future()
        self._queue.put((pending, future))
        return future.result()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            try:
                decisions = self.record_many([pending for pending, _ in batch])
            except BaseException as exc:
                for _, future in batch:
                    future.set_exception(exc)
                continue
            for (_, future), decision in zip(batch, decisions, strict=True):
                future.set_result(decision)

    def record_many(self, pendings: list[Pending]) -> list[Decision]:
        now = utcnow()
        results: list[Decision] = []
        try:
            with writer_turn(self.engine), transaction(self.engine) as session:
                head = lock_chain_head(session)
                # The chain position is kept in memory for the batch and written once at the
                # end; a savepoint rolled back never advanced it.
                position = _Position(head.seq, head.digest)
                connection = session.connection()
                for pending in pendings:
                    try:
                        with connection.begin_nested():
                            results.append(self._append(session, position, pending, now))
                    except _AlreadyDecided:
                        original = StoreDirectory(session).decided(pending.dedup_key or "")
                        if original is None:
                            raise TransientError("decision write conflicted; retry") from None
                        with connection.begin_nested():
                            duplicate = as_duplicate(pending, original)
                            results.append(self._append(session, position, duplicate, now))
                connection.execute(
                    update(HEAD)
                    .where(HEAD.c.id == 1)
                    .values(seq=position.seq, digest=position.digest)
                )
        except sqlalchemy.exc.IntegrityError as exc:
            raise TransientError(f"database refused the write: {type(exc.orig).__name__}") from exc
        self.batches += 1
        self.recorded += len(results)
        return results

    def _append(
        self, session: Session, position: _Position, pending: Pending, now: datetime
    ) -> Decision:
        # SQLAlchemy Core statements on the session's connection: the ORM unit of work
        # cost more than the SQL itself on this path.
        decision = replace(pending.decision, reply=dict(pending.decision.reply))
        store_raw(session, decision.raw_sha256, pending.raw)
        outbox = list(pending.outbox)
        plan = pending.plan
        if (
            plan.status == "queued"
            and plan.recipient
            and not claim_reply_slot(
                session,
                plan.recipient.lower(),
                plan.reason or decision.decision,
                now,
                pending.window,
            )
        ):
            decision.reply = {"status": "suppressed", "reason": "rate_limited"}
            outbox = [item for item in outbox if item.kind != "auto_reply"]
        fields: dict[str, Any] = {
            "seq": position.seq + 1,
            "dedup_key": pending.dedup_key,
            "decision": decision.decision,
            "rule": decision.rule,
            "policy": decision.policy,
            "policy_sha256": decision.policy_sha256,
            "ticket": decision.ticket,
            "reply_status": decision.reply["status"],
            "reply_reason": decision.reply["reason"],
            "message_id": decision.message_id,
            "raw_sha256": decision.raw_sha256,
            "envelope_from": decision.envelope_from,
            "recipients": decision.recipients,
            "received_at": decision.received_at,
            "decided_at": now,
            "channel": decision.channel,
            "trace": decision.trace,
            "duplicate_of": decision.duplicate_of,
        }
        digest = row_digest(position.digest, fields)
        connection = session.connection()
        public_id = new_public_id()
        try:
            decision_id = connection.execute(
                insert(DECISION)
                .values(**fields, public_id=public_id, prev_digest=position.digest, digest=digest)
                .returning(DECISION.c.id)
            ).scalar_one()
        except sqlalchemy.exc.IntegrityError as exc:
            raise _AlreadyDecided() from exc
        outbox_ids = []
        for item in outbox:
            outbox_ids.append(
                connection.execute(
                    insert(OUTBOX)
                    .values(
                        decision_id=decision_id,
                        kind=item.kind,
                        mail_from=item.mail_from,
                        rcpt_to=item.rcpt_to,
                        message_id=item.message_id,
                        body=item.body,
                        status="queued",
                        attempts=0,
                        created_at=now,
                        next_attempt_at=now,
                        expires_at=now + pending.max_delivery,
                    )
                    .returning(OUTBOX.c.id)
                ).scalar_one()
            )
        position.seq, position.digest = fields["seq"], digest
        decision.outbox_ids = outbox_ids
        decision.id, decision.seq = decision_id, fields["seq"]
        decision.public_id = public_id
        return decision


@dataclass
class _Position:
    """Where the audit chain stands inside the batch being written."""

    seq: int
    digest: str


DECISION = SQLModel.metadata.tables["decision"]
OUTBOX = SQLModel.metadata.tables["outbox"]
HEAD = SQLModel.metadata.tables["chain_head"]


def as_duplicate(pending: Pending, original_id: int) -> Pending:
    """The same delivery, recorded as a duplicate of ``original_id``: no key, no reply."""
    decision = replace(
        pending.decision,
        decision="duplicate",
        rule="duplicate",
        reply={"status": "suppressed", "reason": "duplicate"},
        duplicate_of=original_id,
        trace=[
            *pending.decision.trace,
            {
                "rule": "duplicate",
                "hit": True,
                "reason": f"decided concurrently as decision #{original_id}",
            },
        ],
    )
    return replace(
        pending,
        decision=decision,
        dedup_key=None,
        plan=ReplyPlan("suppressed", "duplicate"),
        outbox=[],
    )
