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
from worker.decision import UNDELIVERED, OutboxStatus
from worker.metrics import DECISION_SECONDS, TEMPFAILS
from worker.policy.chain import chain_pairs
from worker.store.models import DecisionRow, OutboxRow

# Every state an automatic reply's outbox row can be in; each is exported, zero or not, so
# that an alert on ``failed`` or ``dead`` has a series to watch from the first scrape.
REPLY_STATES = tuple(OutboxStatus)


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
            pending = UNDELIVERED
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
        yield from self._reply_delivery()
        yield from (decisions, replies, depth, oldest, lag)

    def _reply_delivery(self) -> Iterator[GaugeMetricFamily]:
        """Automatic replies by delivery state, and how long the oldest has waited."""
        states = GaugeMetricFamily(
            "mailgate_reply_delivery",
            "Automatic replies by delivery state (sent, spooled, queued, sending, retry, "
            "failed: refused for good, dead: given up after max_delivery_hours)",
            labels=["state"],
        )
        oldest = GaugeMetricFamily(
            "mailgate_reply_oldest_undelivered_age_seconds",
            "Age of the oldest automatic reply not yet delivered, failed or dead",
        )
        replies = col(OutboxRow.kind) == "auto_reply"
        with Session(self.engine) as session:
            counts = dict(
                session.execute(
                    select(OutboxRow.status, func.count()).where(replies).group_by(OutboxRow.status)
                ).all()
            )
            first = session.scalar(
                select(func.min(OutboxRow.created_at)).where(
                    replies, col(OutboxRow.status).in_(UNDELIVERED)
                )
            )
        for state in sorted(set(REPLY_STATES) | set(counts)):
            states.add_metric([state], counts.get(state, 0))
        oldest.add_metric([], (utcnow() - first).total_seconds() if first else 0.0)
        yield from (states, oldest)


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
    registry.register(TEMPFAILS)
    return registry
