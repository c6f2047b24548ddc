"""``serve --workers N``'s one writer: a process of its own that records every worker's
decisions, so that group commit spans all of them and no commit waits for a Python lock.

Each worker used to commit its own batches, the processes taking turns on the database's
write lock. Measured under ``bench/smtp_bench.py`` (issue 24): the lock was held 93% of
the time, and inside it the committing thread shared its process's GIL with the decide
threads and the event loop, so every SQLite call that let the GIL go (each statement,
the commit's fsync) came back to it only after another thread's turn: 1.3–1.7 ms per
message inside the lock where the same work alone takes ~0.6 ms. Here the workers decide
(parse, rules, reply) and send each ``Pending`` over a pipe; the writer, which does
nothing else, writes whatever has arrived as one transaction with one fsync, and answers
each worker once that has committed. Nothing changes for the client: its ``250`` still
comes after the commit, a message already decided is still found by the unique key, and
any failure is still an error for that message only (``Recorder.record_each``).

The writer ignores stop signals: it stops when the last worker has closed its pipe, so
that a stopping worker's in-flight decisions still commit. If it dies, every worker's
calls fail as transient (``451``/tempfail, the sender retries) and the supervisor stops
the workers. Operators' actions and the periodic jobs still write from the worker that
runs them, taking their turn on the lock as before: they are rare.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import datetime
from multiprocessing.connection import Connection, wait
from typing import Any

import structlog
from sqlmodel import Session

from worker.decision import Decision, Pending, ReplyPlan
from worker.errors import Conflict, TransientError
from worker.recorder import MAX_BATCH, Recorder
from worker.reply_slots import ReplySlots

log = structlog.get_logger("mailgate.writer")

EACH, ALL = "each", "all"  # Recorder.record_each (per message) or record_many (all or none)
Note = tuple[str, str, datetime]  # a reply slot seen taken: sender, reason, until


@dataclass
class _Request:
    connection: Connection
    ticket: int
    mode: str
    pendings: list[Pending]


class NotingSlots(ReplySlots):
    """The writer's reply slots, also kept as a list to hand to the workers that decide."""

    def __init__(self) -> None:
        super().__init__()
        self.fresh: list[Note] = []

    def note(self, sender: str, reason: str, until: datetime) -> None:
        super().note(sender, reason, until)
        self.fresh.append((sender, reason, until))


def run_writer(recorder: Recorder, connections: list[Connection]) -> int:
    """Serve the workers' pipes until every one of them is closed; returns the exit code."""
    slots = NotingSlots()
    recorder.reply_slots = slots
    log.info("writer_started", pid=os.getpid(), workers=len(connections))
    open_connections = list(connections)
    while open_connections:
        requests = _receive(open_connections, wait(open_connections))
        # Whatever else has arrived meanwhile joins this transaction.
        while requests and sum(len(r.pendings) for r in requests) < MAX_BATCH:
            more = _receive(open_connections, wait(open_connections, timeout=0))
            if not more:
                break
            requests += more
        _answer(recorder, slots, requests)
    log.info("writer_stopped")
    return 0


def _receive(open_connections: list[Connection], ready: list[Any]) -> list[_Request]:
    requests = []
    for connection in ready:
        try:
            ticket, mode, pendings = connection.recv()
        except (EOFError, OSError):
            open_connections.remove(connection)  # that worker has stopped
            continue
        requests.append(_Request(connection, ticket, mode, pendings))
    return requests


def _answer(recorder: Recorder, slots: NotingSlots, requests: list[_Request]) -> None:
    """Record the requests (the per-message ones together), then answer each."""
    outcomes: dict[int, list[Decision | Exception] | Exception] = {}
    each = [r for r in requests if r.mode == EACH]
    if each:
        results = _recorded(lambda: recorder.record_each([p for r in each for p in r.pendings]))
        start = 0
        for request in each:
            count = len(request.pendings)
            outcomes[id(request)] = (
                results if isinstance(results, Exception) else results[start : start + count]
            )
            start += count
    for request in requests:
        if request.mode == ALL:
            outcomes[id(request)] = _recorded(lambda r=request: recorder.record_many(r.pendings))
    notes, slots.fresh = slots.fresh, []
    for request in requests:
        answer = _answer_of(outcomes[id(request)], request.pendings)
        # A worker gone meanwhile: its senders retry, and the commit stands (a duplicate then).
        with contextlib.suppress(OSError):
            request.connection.send((request.ticket, answer, notes))


def _answer_of(
    outcome: list[Decision | Exception] | Exception, pendings: list[Pending]
) -> list[_Recorded | Exception] | Exception:
    if isinstance(outcome, Exception):
        return outcome
    return [
        _portable(result) if isinstance(result, Exception) else _Recorded.of(result, sent)
        for result, sent in zip(outcome, pendings, strict=True)
    ]


@dataclass(frozen=True)
class _Recorded:
    """What recording changed of a decision the worker sent, all that goes back: the
    whole decision would cost as much to pickle again as it did to send (its trace)."""

    id: int | None
    seq: int | None
    public_id: str | None
    outbox_ids: list[int]
    reply: ReplyPlan
    reply_language: str | None
    decision: str
    rule: str
    duplicate_of: int | None
    original_decision: str | None
    trace: list[dict[str, Any]] | None  # None: as sent

    @classmethod
    def of(cls, decision: Decision, sent: Pending) -> _Recorded:
        changed = decision.trace is not sent.decision.trace
        return cls(
            decision.id,
            decision.seq,
            decision.public_id,
            decision.outbox_ids,
            decision.reply,
            decision.reply_language,
            decision.decision,
            decision.rule,
            decision.duplicate_of,
            decision.original_decision,
            decision.trace if changed else None,
        )

    def onto(self, sent: Decision) -> Decision:
        """The worker's decision as the writer recorded it."""
        decision = replace(
            sent,
            id=self.id,
            seq=self.seq,
            public_id=self.public_id,
            reply=self.reply,
            reply_language=self.reply_language,
            decision=self.decision,
            rule=self.rule,
            duplicate_of=self.duplicate_of,
            original_decision=self.original_decision,
            trace=sent.trace if self.trace is None else self.trace,
        )
        decision.outbox_ids = self.outbox_ids
        return decision


def _recorded(call: Any) -> Any:
    try:
        return call()
    except Exception as exc:
        return _portable(exc)


def _portable(result: Any) -> Any:
    """A result that crosses the pipe: a decision, or an error the gateway answers as
    "retry later" (a driver's exception may hold what cannot be pickled)."""
    if isinstance(result, Exception) and not isinstance(result, TransientError | Conflict):
        return TransientError(f"recording failed: {type(result).__name__}")
    return result


class RecordingClient:
    """A worker's side: ``record`` and ``record_many`` go to the writer; operators'
    actions (``record_action``) are written here, by the worker's own recorder."""

    def __init__(self, connection: Connection, local: Recorder) -> None:
        self.connection = connection
        self.local = local
        self.reply_slots = local.reply_slots
        self._tickets = itertools.count(1)
        self._waiting: dict[int, Future[Any]] = {}
        self._lock = threading.Lock()  # the waiting futures
        self._sending = threading.Lock()
        self._broken: str | None = None
        self._closing = False
        threading.Thread(target=self._read, name="writer-answers", daemon=True).start()

    def start(self) -> None:
        """Nothing to start: the writer process commits (the local recorder's group-commit
        thread stays off)."""

    def record(self, pending: Pending) -> Decision:
        result = self._call(EACH, [pending])[0]
        if isinstance(result, Exception):
            raise result
        return result.onto(pending.decision)

    def record_many(self, pendings: list[Pending]) -> list[Decision]:
        results = self._call(ALL, pendings)
        return [r.onto(p.decision) for r, p in zip(results, pendings, strict=True)]

    def record_action(
        self,
        pending: Pending,
        acts_on: int,
        alongside: Callable[[Session], None] | None = None,
    ) -> Decision:
        return self.local.record_action(pending, acts_on, alongside)

    def _call(self, mode: str, pendings: list[Pending]) -> Any:
        future: Future[Any] = Future()
        with self._lock:
            if self._broken is not None:
                raise TransientError(self._broken)
            ticket = next(self._tickets)
            self._waiting[ticket] = future
        try:
            # Sends take turns on a lock of their own: the answers' reader never waits
            # behind a large message being sent, so the writer's answers never back up.
            with self._sending:
                self.connection.send((ticket, mode, pendings))
        except OSError as exc:
            with self._lock:
                self._waiting.pop(ticket, None)
            raise TransientError(f"the writer process is gone: {type(exc).__name__}") from exc
        outcome = future.result()
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def _read(self) -> None:
        while True:
            try:
                ticket, outcome, notes = self.connection.recv()
            except (EOFError, OSError):
                self._fail_all("the writer process is gone")
                return
            for sender, reason, until in notes:
                self.reply_slots.note(sender, reason, until)
            with self._lock:
                future = self._waiting.pop(ticket, None)
            if future is not None:
                future.set_result(outcome)

    def close(self) -> None:
        """Done: the writer reads the end of this pipe (as at this worker's exit)."""
        self._closing = True
        # Shut down, not just closed: the reading thread's own reference keeps it open.
        with (
            contextlib.suppress(OSError),
            socket.socket(fileno=os.dup(self.connection.fileno())) as shared,
        ):
            shared.shutdown(socket.SHUT_RDWR)
        self.connection.close()

    def _fail_all(self, reason: str) -> None:
        if not self._closing:
            log.error("writer_gone")
        with self._lock:
            self._broken = reason
            waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            future.set_exception(TransientError(reason))
