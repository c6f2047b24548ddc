"""Decisions over time for the console's chart: counts per hour and decision, in the database.

The hour is cut by the database (``strftime`` on SQLite, ``date_trunc`` on PostgreSQL), so a
busy day costs one grouped query of at most ``hours × decisions`` rows, not a row per
message. Hours without a decision are present with no counts, so the chart has no gaps.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from worker.clock import utcnow
from worker.store.models import DecisionRow

MAX_HOURS = 24 * 14


def decisions_per_hour(engine: Engine, hours: int) -> dict[str, Any]:
    hours = max(1, min(hours, MAX_HOURS))
    end = utcnow().replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(hours=hours)
    received = col(DecisionRow.received_at)
    if engine.dialect.name == "sqlite":
        hour: Any = func.strftime("%Y-%m-%dT%H", received)
    else:
        utc = func.timezone("UTC", received)  # the hour in UTC, whatever the session's zone
        hour = func.to_char(func.date_trunc("hour", utc), 'YYYY-MM-DD"T"HH24')
    with Session(engine) as session:
        rows = session.execute(
            select(hour, DecisionRow.decision, func.count())
            .where(received >= start)
            .group_by(hour, DecisionRow.decision)
        ).all()
    buckets: dict[str, dict[str, int]] = {
        (start + timedelta(hours=n)).strftime("%Y-%m-%dT%H"): {} for n in range(hours)
    }
    for key, decision, count in rows:
        if key in buckets:
            buckets[key][decision] = count
    return {
        "start": start.isoformat(),
        "hours": [{"start": _hour_start(key), "counts": counts} for key, counts in buckets.items()],
    }


def _hour_start(key: str) -> str:
    return datetime.strptime(key, "%Y-%m-%dT%H").replace(tzinfo=UTC).isoformat()
