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
from dataclasses import dataclass
from typing import Any

import structlog

from worker.anchoring import anchor_loop
from worker.dispatcher import Dispatcher
from worker.held import expiry_loop
from worker.helpdesk.config import connector_for
from worker.helpdesk.service import HelpdeskHealth, sync_loop
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


@dataclass(frozen=True)
class JobContext:
    """What a periodic job may use: the gate, the stop event, the helpdesk's health (which
    ``/readyz`` reads)."""

    gate: Mailgate
    stopping: asyncio.Event
    helpdesk_health: HelpdeskHealth


Job = Callable[[JobContext], Coroutine[Any, Any, None]]


async def retention(context: JobContext) -> None:
    """MAILGATE_RETENTION_DAYS: purge raw messages past it, at once and hourly."""
    days = context.gate.settings.retention_days
    assert days is not None  # wanted only when set
    await retention_loop(context.gate.engine, days, context.stopping)


async def hold_expiry(context: JobContext) -> None:
    """Held mail nobody acted on gets its rule's own decision after ``hold_days``; every
    replica runs it, each message still expires once (worker.held)."""
    await expiry_loop(context.gate, context.stopping)


async def helpdesk_sync(context: JobContext) -> None:
    """Keep the ticket directory in step with the helpdesk (a lease: one replica syncs)."""
    settings = context.gate.settings
    connector = connector_for(settings)
    assert connector is not None  # wanted only with MAILGATE_HELPDESK
    await sync_loop(
        context.gate.engine, connector, settings, context.stopping, context.helpdesk_health
    )


async def anchoring(context: JobContext) -> None:
    """Timestamp the chain head at the TSA, once across replicas (worker.anchoring)."""
    settings = context.gate.settings
    await anchor_loop(context.gate.engine, settings, context.stopping)


# (name, whether the settings want it, the job)
PERIODIC_JOBS: tuple[tuple[str, Callable[[Settings], bool], Job], ...] = (
    ("hold-expiry", lambda settings: True, hold_expiry),
    ("helpdesk_sync", lambda settings: settings.helpdesk is not None, helpdesk_sync),
    ("retention", lambda settings: bool(settings.retention_days), retention),
    ("anchoring", lambda settings: bool(settings.tsa_url), anchoring),
)


def start_periodic_jobs(context: JobContext, *, dispatching: bool) -> list[asyncio.Task[None]]:
    """The jobs the settings want, as tasks, in the one process that dispatches."""
    if not dispatching:
        return []
    return [
        asyncio.create_task(job(context), name=name)
        for name, wanted, job in PERIODIC_JOBS
        if wanted(context.gate.settings)
    ]
