"""The retention job: raw messages older than ``MAILGATE_RETENTION_DAYS`` are dropped.

Only the bytes go; each row keeps its digest and size, so the decision chain stays
verifiable and a redelivered message is still known as decided. ``serve`` runs the job
hourly as a task of its own, beside (not inside) the outbox dispatcher, so a slow purge
never delays a reply and a slow relay never delays a purge.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from functools import partial

import structlog
from sqlalchemy import Engine

from worker.clock import utcnow
from worker.periodic import every
from worker.store.repository import purge_raw

log = structlog.get_logger("mailgate.retention")
PURGE_INTERVAL = 3600.0  # seconds; retention is counted in days, hourly is plenty


def purge_expired(engine: Engine, retention_days: float) -> int:
    """One purge of raw messages stored more than ``retention_days`` ago; how many went."""
    cutoff = utcnow() - timedelta(days=retention_days)
    purged = purge_raw(engine, cutoff)
    log.info("retention_purge", raw_messages=purged, before=cutoff.isoformat())
    return purged


async def retention_loop(
    engine: Engine,
    retention_days: float,
    stopping: asyncio.Event,
    interval: float = PURGE_INTERVAL,
) -> None:
    """Purge at once, then every ``interval`` seconds, until ``stopping`` is set.

    The first purge runs even when ``stopping`` is already set: a short-lived process
    still applies retention once.
    """
    await every(
        interval, stopping, partial(purge_expired, engine, retention_days), "retention_purge_failed"
    )
