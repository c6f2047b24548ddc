"""``serve``'s way of spooling a committed decision's replies: on the outbox thread, after
the client has had its answer, with whatever else was committed meanwhile.

A one-shot command spools before it exits (``Mailgate``'s default). ``serve`` need not make
the client wait for it: the reply is already committed in the outbox, and a crash before
its file is written leaves the row queued for the next outbox round, which writes it.
Before, each message with a reply waited for the file's fsync and the directory's inside
its DATA→250 (bench/RESULTS.md, issue 24). Rounds are batched: ids that arrive while one
is waiting or running go together into the next.
"""

from __future__ import annotations

import threading
from concurrent.futures import Executor
from pathlib import Path

import structlog
from sqlalchemy import Engine

from worker.errors import TransientError
from worker.outbox import spool_pending

log = structlog.get_logger("mailgate.outbox")


class SpoolSoon:
    """Called with a commit's outbox ids from any thread; spools them on ``executor``."""

    def __init__(self, engine: Engine, directory: Path, executor: Executor) -> None:
        self.engine = engine
        self.directory = directory
        self.executor = executor
        self._ids: list[int] = []
        self._lock = threading.Lock()

    def __call__(self, ids: list[int]) -> None:
        with self._lock:
            waiting = bool(self._ids)
            self._ids.extend(ids)
        if not waiting:  # else a round is already on its way and will take these too
            self.executor.submit(self._round)

    def _round(self) -> None:
        with self._lock:
            ids, self._ids = self._ids, []
        if not ids:
            return
        try:
            spool_pending(self.engine, self.directory, ids)
        except (OSError, TransientError) as exc:
            # Still queued in the outbox: the next outbox round writes them.
            log.warning("outbox_spool_deferred", error=str(exc))
