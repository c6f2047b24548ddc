"""Held-mail gauges, read from the decision log at scrape time like the decision counters.

``mailgate_held_messages`` counts the messages a policy held for an operator that nobody
has released, rejected or discarded yet (quarantined mail is not held: it has no expiry),
and ``mailgate_held_oldest_age_seconds`` says how long the oldest of them has waited;
the alert on it fires when held mail waits longer than a day.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlmodel import Session

from worker.clock import utcnow
from worker.held import held_summary


class HeldCollector(Collector):
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with Session(self.engine) as session:
            count, oldest = held_summary(session)
        held = GaugeMetricFamily(
            "mailgate_held_messages", "Messages held for an operator, not yet acted on"
        )
        held.add_metric([], count)
        age = GaugeMetricFamily(
            "mailgate_held_oldest_age_seconds",
            "How long the oldest message held for an operator has waited (0: none held)",
        )
        age.add_metric([], max(0.0, (utcnow() - oldest).total_seconds()) if oldest else 0.0)
        yield from (held, age)
