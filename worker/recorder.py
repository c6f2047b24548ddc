"""Recording decisions: one transaction per batch, so that ``250`` means committed *and*
throughput grows with the number of concurrent sessions (group commit).

Each decision in a batch is appended in turn: the raw message, the reply ledger claim, the
decision row with its audit-chain link, and its outbox rows. A message already decided
(the unique ``dedup_key`` refuses it, whether the earlier decision was committed long ago
or is a few rows up in the same batch) rolls the whole batch back; the batch is then
written again with each message inside its own savepoint, and that message is rolled back
to it and appended as ``duplicate`` (a savepoint around every message cost two statements
each, for the rare redelivery). A message whose own write fails for any other reason (a value
the database refuses) must not fail the sessions batched with it: the group-commit thread
writes the batch again with savepoints, that message alone is rolled back and answered with
its error, and its neighbours commit. The batch commits once, with one fsync; only then is any
caller answered. If the commit fails, every caller in the batch gets the error and nothing
of the batch exists, so each sender retries.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import replace
from datetime import datetime

import sqlalchemy.exc
from sqlalchemy import Engine, insert, select, update
from sqlmodel import Session, SQLModel

from worker.audit import row_digest, seal
from worker.clock import utcnow
from worker.decision import (
    Decision,
    DecisionName,
    OutboxKind,
    Pending,
    ReplyPlan,
    ReplyReason,
    ReplyStatus,
    RuleName,
)
from worker.decision_rows import Entry, Position, decision_fields, rate_limited
from worker.errors import Conflict, TransientError
from worker.policy.document import PolicySet
from worker.policy.earlier import at_commit
from worker.public_id import new_public_id
from worker.reply_slots import ReplySlots
from worker.store.db import transaction, writer_turn
from worker.store.repository import (
    SPOOL_ABOVE,
    STORE_RAW,
    StoreDirectory,
    claim_reply_slot,
    lock_chain_head,
    raw_values,
    slot_taken_at,
    store_raw,
)

MAX_BATCH = 64


class _AlreadyDecided(Exception):
    """The unique constraint on ``dedup_key`` found an earlier decision of this message."""


class Recorder:
    """Writes pending decisions; ``start()`` turns on the group-commit thread."""

    def __init__(
        self,
        engine: Engine,
        reply_slots: ReplySlots | None = None,
        policies: PolicySet | None = None,
    ) -> None:
        self.engine = engine
        self.reply_slots = reply_slots if reply_slots is not None else ReplySlots()
        self.policies = policies  # builds a late reply (``Pending.late_reply``)
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
            futures, outcome = self._record_batch(self._queue.get())
            for number, future in enumerate(futures):
                result = outcome if isinstance(outcome, BaseException) else outcome[number]
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    def _record_batch(
        self, first: tuple[Pending, Future[Decision]]
    ) -> tuple[list[Future[Decision]], list[Decision | Exception] | BaseException]:
        """Record one batch. Only the futures and the outcome leave: the pendings, each
        holding its raw bytes, die with this frame before any caller is answered, instead of
        staying referenced while the thread waits for the next message (a 25 MB one stayed)."""
        batch = [first]
        while len(batch) < MAX_BATCH:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        futures = [future for _, future in batch]
        try:
            return futures, self.record_each([pending for pending, _ in batch])
        except BaseException as exc:
            return futures, exc

    def record_many(self, pendings: list[Pending]) -> list[Decision]:
        """All or nothing: the first message that cannot be written fails the batch."""
        results = self._record(pendings, isolate=False)
        return [result for result in results if isinstance(result, Decision)]

    def record_each(self, pendings: list[Pending]) -> list[Decision | Exception]:
        """Each message's own outcome, its decision or its error; one failing message is
        rolled back alone and its neighbours are committed."""
        return self._record(pendings, isolate=len(pendings) > 1)

    def _record(self, pendings: list[Pending], isolate: bool) -> list[Decision | Exception]:
        now = utcnow()
        try:
            try:
                # Most batches hold no message decided before: written straight through.
                results = self._write(pendings, now, savepoints=False)
            except _AlreadyDecided:
                # The whole batch rolled back; again, each message in its own savepoint.
                results = self._write(pendings, now, savepoints=True, isolate=isolate)
            except Exception:
                if not isolate:
                    raise
                # One message's value broke the batch: again, each in its own savepoint.
                results = self._write(pendings, now, savepoints=True, isolate=True)
        except sqlalchemy.exc.IntegrityError as exc:
            raise TransientError(f"database refused the write: {type(exc.orig).__name__}") from exc
        self.batches += 1
        self.recorded += sum(isinstance(result, Decision) for result in results)
        return results

    def _write(
        self, pendings: list[Pending], now: datetime, savepoints: bool, isolate: bool = False
    ) -> list[Decision | Exception]:
        """One transaction for the batch. Without ``savepoints`` a message already decided
        raises ``_AlreadyDecided`` and nothing of the batch is kept; with them it is
        rolled back to its savepoint and appended again as a ``duplicate``, and with
        ``isolate`` any other failure of one message is rolled back and becomes its result."""
        results: list[Decision | Exception] = []
        with writer_turn(self.engine), transaction(self.engine) as session:
            head = lock_chain_head(session)
            # The chain position is kept in memory for the batch and written once at the
            # end; a savepoint rolled back never advanced it.
            position = Position(head.seq, head.digest)
            connection = session.connection()
            if not savepoints:
                results += self._append_batch(session, position, pendings, now)
            for pending in pendings if savepoints else ():
                try:
                    results.append(self._append_alone(session, position, pending, now))
                except Exception as exc:
                    if not isolate:
                        raise
                    results.append(_own_error(exc))
            connection.execute(_MOVE_HEAD, {"seq": position.seq, "digest": position.digest})
        return results

    def record_action(
        self,
        pending: Pending,
        acts_on: int,
        alongside: Callable[[Session], None] | None = None,
    ) -> Decision:
        """Append a record acting on decision ``acts_on`` (an operator's release, reject or
        discard, or the hold expiry), with ``alongside``'s writes, once: the chain head's
        lock serialises writers across replicas, so whoever comes second finds the first
        record and gets ``Conflict`` with nothing written (the unique ``acts_on`` backs it)."""
        now = utcnow()
        with writer_turn(self.engine), transaction(self.engine) as session:
            head = lock_chain_head(session)
            taken = select(DECISION.c.id).where(DECISION.c.acts_on == acts_on)
            if session.connection().execute(taken).first() is not None:
                raise Conflict(f"decision {acts_on} was already acted on")
            position = Position(head.seq, head.digest)
            try:
                decision = self._append(session, position, pending, now, acts_on=acts_on)
            except _AlreadyDecided:
                raise Conflict(f"decision {acts_on} was already acted on") from None
            if alongside is not None:
                alongside(session)
            session.connection().execute(
                _MOVE_HEAD, {"seq": position.seq, "digest": position.digest}
            )
        self.recorded += 1
        return decision

    def _claim_reply(self, session: Session, pending: Pending, now: datetime) -> bool:
        """False when a queued reply loses its (sender, reason) slot to an earlier reply.
        Either way the slot is now known taken until its holder's window ends."""
        plan = pending.decision.reply
        if plan.status != ReplyStatus.QUEUED or not plan.recipient:
            return True
        sender, reason = plan.recipient.lower(), plan.reason or pending.decision.decision
        won = claim_reply_slot(session, sender, reason, now, pending.window)
        if not won and pending.late_reply is not None:
            return False  # the deciding process knew the slot was taken: nothing to learn
        held_since = now if won else slot_taken_at(session, sender, reason)
        if held_since is not None:
            self.reply_slots.note(sender, reason, held_since + pending.window)
        return won

    def _append_alone(
        self, session: Session, position: Position, pending: Pending, now: datetime
    ) -> Decision:
        """``_append`` inside a savepoint; a message already decided becomes a duplicate."""
        connection = session.connection()
        try:
            with connection.begin_nested():
                return self._append(session, position, pending, now)
        except _AlreadyDecided:
            original = StoreDirectory(session).decided_as(pending.dedup_key or "")
            if original is None:
                raise TransientError("decision write conflicted; retry") from None
            with connection.begin_nested():
                duplicate = as_duplicate(pending, *original)
                return self._append(session, position, duplicate, now)

    def _append(
        self,
        session: Session,
        position: Position,
        pending: Pending,
        now: datetime,
        acts_on: int | None = None,
    ) -> Decision:
        # SQLAlchemy Core statements on the session's connection: the ORM unit of work
        # cost more than the SQL itself on this path.
        store_raw(session, pending.decision.raw_sha256, pending.raw)
        entry = self._prepare(session, position, pending, now)
        if acts_on is not None:
            entry.row["acts_on"] = acts_on
        try:
            decision_id = session.connection().execute(_INSERT_DECISION, entry.row).scalar_one()
        except sqlalchemy.exc.IntegrityError as exc:
            raise _AlreadyDecided() from exc
        outbox_ids = [
            session.connection().execute(_INSERT_OUTBOX, row).scalar_one()
            for row in entry.outbox_rows(decision_id)
        ]
        return entry.advance(position, decision_id, outbox_ids)

    def _append_batch(
        self, session: Session, position: Position, pendings: list[Pending], now: datetime
    ) -> list[Decision]:
        """The whole batch with one statement per table (``executemany``, its ids in order):
        per message, each statement's Python cost more than the database's work. A message
        decided before fails the batch (``_AlreadyDecided``), which is then written again
        message by message with savepoints; nothing of this attempt is kept."""
        connection = session.connection()
        large = _sqlite(session)  # a large raw message goes by blob I/O (``store_raw``)
        small = [p for p in pendings if not (large and len(p.raw) > SPOOL_ABOVE)]
        for pending in pendings:
            if large and len(pending.raw) > SPOOL_ABOVE:
                store_raw(session, pending.decision.raw_sha256, pending.raw)
        if small:
            connection.execute(STORE_RAW[not _sqlite(session)], [raw_values(p) for p in small])
        entries: list[Entry] = []
        for pending in pendings:
            entries.append(self._prepare(session, position, pending, now))
            # Within the batch the chain moves on as each row is linked; a failure rolls
            # the whole transaction back and the next attempt reads the head again.
            position.seq, position.digest = entries[-1].row["seq"], entries[-1].row["digest"]
        if not entries:
            return []
        try:
            ids = connection.execute(_INSERT_DECISIONS, [e.row for e in entries]).scalars().all()
        except sqlalchemy.exc.IntegrityError as exc:
            raise _AlreadyDecided() from exc
        outbox_rows = [row for e, i in zip(entries, ids, strict=True) for row in e.outbox_rows(i)]
        outbox_ids = iter(
            connection.execute(_INSERT_OUTBOXES, outbox_rows).scalars().all() if outbox_rows else []
        )
        return [
            e.advance(position, i, [next(outbox_ids) for _ in e.outbox])
            for e, i in zip(entries, ids, strict=True)
        ]

    def _prepare(
        self, session: Session, position: Position, pending: Pending, now: datetime
    ) -> Entry:
        """The decision's reply claim, then its row linked after ``position``."""
        decision = replace(pending.decision)
        outbox = list(pending.outbox)
        if not self._claim_reply(session, pending, now):
            rate_limited(decision)
            outbox = [item for item in outbox if item.kind != OutboxKind.AUTO_REPLY]
        elif pending.late_reply is not None and decision.reply.status == ReplyStatus.QUEUED:
            assert self.policies is not None, "a late reply needs the policies"
            # The slot was free after all: the reply and its language, as decide() makes them.
            reply, language = pending.late_reply.build(self.policies, pending.raw, decision)
            decision.reply = replace(decision.reply, language=language)
            decision.reply_language = language.language
            decision.trace = [*decision.trace, language.trace_step()]
            outbox.insert(0, reply)
        # Sealed: the link covers a salted digest of the personal fields (erasable).
        fields = seal(decision_fields(decision, pending.dedup_key, position.seq + 1, now))
        digest = row_digest(position.digest, fields)
        decision.public_id = decision.public_id or new_public_id()  # decide() drew it
        row = {
            **fields,
            "public_id": decision.public_id,
            "prev_digest": position.digest,
            "digest": digest,
        }
        return Entry(decision, row, outbox, now, pending.max_delivery)


def _sqlite(session: Session) -> bool:
    return session.get_bind().dialect.name == "sqlite"


def _own_error(error: Exception) -> Exception:
    """A message's failed write as its caller sees it: a refused row is transient."""
    if isinstance(error, sqlalchemy.exc.IntegrityError):
        return TransientError(f"database refused the write: {type(error.orig).__name__}")
    return error


DECISION = SQLModel.metadata.tables["decision"]
OUTBOX = SQLModel.metadata.tables["outbox"]
HEAD = SQLModel.metadata.tables["chain_head"]
# Built once: a statement built per row cost more Python (coercion, cache key) than its
# execution; executed with a dict of values, each compiles once and is reused.
_INSERT_DECISION = insert(DECISION).returning(DECISION.c.id)
_INSERT_OUTBOX = insert(OUTBOX).returning(OUTBOX.c.id)
# executemany with RETURNING (SQLAlchemy's "insertmanyvalues"): the ids in the rows' order.
_INSERT_DECISIONS = insert(DECISION).returning(DECISION.c.id, sort_by_parameter_order=True)
_INSERT_OUTBOXES = insert(OUTBOX).returning(OUTBOX.c.id, sort_by_parameter_order=True)
_MOVE_HEAD = update(HEAD).where(HEAD.c.id == 1)


def as_duplicate(pending: Pending, original_id: int, original_decision: str) -> Pending:
    """The same delivery, recorded as a duplicate of ``original_id``: no key, no reply, and
    the chain's outcome replaced by the ``duplicate`` hit (not a second step appended)."""
    decision = replace(
        pending.decision,
        decision=str(DecisionName.DUPLICATE),
        rule=str(RuleName.DUPLICATE),
        reply=ReplyPlan(ReplyStatus.SUPPRESSED, ReplyReason.DUPLICATE),
        duplicate_of=original_id,
        original_decision=original_decision,
        # Found by the unique key at commit: a redelivery or a concurrent one.
        trace=at_commit(pending.decision.trace, original_id),
    )
    return replace(
        pending,
        decision=decision,
        dedup_key=None,
        outbox=[],
        late_reply=None,
    )
