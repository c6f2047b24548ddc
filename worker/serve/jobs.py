"""The outbox loop and the periodic jobs ``serve`` runs beside its listeners.

The outbox loop hands committed rows on as decisions wake it (and every
``OUTBOX_INTERVAL`` seconds for retries): without a relay it spools mail rows to files,
the dispatcher sends the rest. Periodic jobs run in the one process that dispatches, so
that with ``--workers`` each runs once; ``PERIODIC_JOBS`` is their table: a name, whether
the settings want it, and the coroutine that runs it until ``stopping`` is set. A new job
is a function here and a row in the table.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import Executor
from typing import Any

import structlog

from worker.dispatcher import Dispatcher
from worker.outbox import spool_pending
from worker.pipeline import Mailgate
from worker.retention import retention_loop
from worker.settings import Settings

log = structlog.get_logger("mailgate.serve")
OUTBOX_INTERVAL = 5.0


class OutboxLoop:
    """Hands on outbox rows as decisions commit them, and retries on a timer."""

    def __init__(self, gate: Mailgate, dispatcher: Dispatcher, wake: asyncio.Event) -> None:
        self.gate = gate
        self.dispatcher = dispatcher
        self.wake = wake

    def round(self) -> int:
        """One pass: spool mail rows when there is no relay, dispatch the rest."""
        settings = self.gate.settings
        done = 0
        if not settings.relay_url:
            done += spool_pending(self.gate.engine, settings.outbox_dir)
        while (sent := self.dispatcher.run_once()) > 0:
            done += sent
        return done

    async def run(self, executor: Executor, stopping: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        while not stopping.is_set():
            self.wake.clear()
            try:
                await loop.run_in_executor(executor, self.round)
            except Exception as exc:
                log.warning("outbox_round_failed", error=type(exc).__name__)
            waiters = [
                asyncio.ensure_future(stopping.wait()),
                asyncio.ensure_future(self.wake.wait()),
            ]
            await asyncio.wait(
                waiters, timeout=OUTBOX_INTERVAL, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in waiters:
                waiter.cancel()


Job = Callable[[Mailgate, asyncio.Event], Coroutine[Any, Any, None]]


async def retention(gate: Mailgate, stopping: asyncio.Event) -> None:
    """MAILGATE_RETENTION_DAYS: purge raw messages past it, at once and hourly."""
    days = gate.settings.retention_days
    assert days is not None  # wanted only when set
    await retention_loop(gate.engine, days, stopping)


# (name, whether the settings want it, the job)
PERIODIC_JOBS: tuple[tuple[str, Callable[[Settings], bool], Job], ...] = (
    ("retention", lambda settings: bool(settings.retention_days), retention),
)


def start_periodic_jobs(
    gate: Mailgate, stopping: asyncio.Event, *, dispatching: bool
) -> list[asyncio.Task[None]]:
    """The jobs the settings want, as tasks, in the one process that dispatches."""
    if not dispatching:
        return []
    return [
        asyncio.create_task(job(gate, stopping), name=name)
        for name, wanted, job in PERIODIC_JOBS
        if wanted(gate.settings)
    ]
