"""The helpdesk's metrics, read from ``helpdesk_state`` at scrape time (the same from every
replica): when the last sync round succeeded, and how many syncs and deliveries failed.
Both families are exported even without a helpdesk, so the alert rule always has a series."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlmodel import Session, select

from worker.clock import aware
from worker.store.models import HelpdeskState


class HelpdeskCollector(Collector):
    def __init__(self, engine: Engine, name: str | None) -> None:
        self.engine = engine
        self.name = name or "none"

    def collect(self) -> Iterator[Any]:
        last = GaugeMetricFamily(
            "mailgate_helpdesk_last_sync_timestamp_seconds",
            "When the last helpdesk sync round succeeded (0: never)",
            labels=["helpdesk"],
        )
        errors = CounterMetricFamily(
            "mailgate_helpdesk_errors",
            "Helpdesk sync rounds and deliveries that failed",
            labels=["helpdesk", "operation"],
        )
        with Session(self.engine) as session:
            row = session.scalars(
                select(HelpdeskState).where(HelpdeskState.name == self.name)
            ).first()
        synced = aware(row.last_sync_at).timestamp() if row and row.last_sync_at else 0.0
        last.add_metric([self.name], synced)
        errors.add_metric([self.name, "sync"], row.sync_errors if row else 0)
        errors.add_metric([self.name, "delivery"], row.delivery_errors if row else 0)
        yield last
        yield errors
