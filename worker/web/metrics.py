"""Prometheus metrics: counts from the database, latencies from this process.

Decision and reply counters are read from the decision log at scrape time, so they are
exact across worker processes and replicas and survive restarts (rows are only ever
added). The latency histogram is observed in this process; the outbox depth and the age
of its oldest row come from the outbox table; IMAP lag from the mailbox workers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from worker.clock import utcnow
from worker.metrics import DECISION_SECONDS
from worker.policy.chain import chain_pairs
from worker.store.models import DecisionRow, OutboxRow


class StoreCollector(Collector):
    def __init__(self, engine: Engine, imap_lag: Callable[[], dict[str, int]]) -> None:
        self.engine = engine
        self.imap_lag = imap_lag

    def collect(self) -> Iterator[Any]:
        decisions = CounterMetricFamily(
            "mailgate_decisions", "Decisions recorded", labels=["decision", "rule"]
        )
        replies = CounterMetricFamily(
            "mailgate_replies", "Automatic replies by status", labels=["status", "reason"]
        )
        depth = GaugeMetricFamily(
            "mailgate_outbox_depth", "Outbox rows not yet handed on", labels=["status"]
        )
        oldest = GaugeMetricFamily(
            "mailgate_outbox_oldest_age_seconds", "Age of the oldest outbox row not yet handed on"
        )
        with Session(self.engine) as session:
            for (decision, rule), count in _decision_counts(session).items():
                decisions.add_metric([decision, rule], count)
            for status, reason, count in session.execute(
                select(
                    DecisionRow.reply_status, col(DecisionRow.reply_reason), func.count()
                ).group_by(col(DecisionRow.reply_status), col(DecisionRow.reply_reason))
            ):
                replies.add_metric([status, reason or ""], count)
            pending = ("queued", "retry", "sending")
            for status, count in session.execute(
                select(OutboxRow.status, func.count())
                .where(col(OutboxRow.status).in_(pending))
                .group_by(OutboxRow.status)
            ):
                depth.add_metric([status], count)
            first = session.scalar(
                select(func.min(OutboxRow.created_at)).where(col(OutboxRow.status).in_(pending))
            )
        oldest.add_metric([], (utcnow() - first).total_seconds() if first else 0.0)
        lag = GaugeMetricFamily(
            "mailgate_imap_lag_messages",
            "Messages seen in a mailbox, not yet decided",
            labels=["mailbox"],
        )
        for mailbox, value in self.imap_lag().items():
            lag.add_metric([mailbox], value)
        yield from (decisions, replies, depth, oldest, lag)


def _decision_counts(session: Session) -> dict[tuple[str, str], int]:
    """Recorded decisions by (decision, rule), with every pair of the chain table present
    from the start, so that a rate over a series that has not happened yet is zero."""
    counts = {(str(decision), str(rule)): 0 for rule, decision in chain_pairs()}
    for decision, rule, count in session.execute(
        select(DecisionRow.decision, DecisionRow.rule, func.count()).group_by(
            DecisionRow.decision, DecisionRow.rule
        )
    ):
        counts[(decision, rule)] = count
    return counts


def registry_for(engine: Engine, imap_lag: Callable[[], dict[str, int]]) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(StoreCollector(engine, imap_lag))
    registry.register(DECISION_SECONDS)
    return registry
