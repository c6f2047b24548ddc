"""Metrics the core observes in this process, kept apart from the HTTP side that serves them.

The pipeline times each decision here; ``worker.web.metrics`` registers the histogram next
to the counters it reads from the database. Living outside ``web/`` keeps the core free of
imports from the HTTP side.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from worker.decision import Channel

DECISION_SECONDS = Histogram(
    "mailgate_decision_seconds",
    "Time from message bytes to committed decision",
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
    registry=None,
)

# Every 451 4.3.0 after DATA: the rate ops alert on (per process; Prometheus sums them).
TEMPFAILS = Counter(
    "mailgate_smtp_tempfail",
    "Messages answered 451 4.3.0 (not accepted, the client retries)",
    labelnames=["channel"],
    registry=None,
)
for _channel in (Channel.SMTP, Channel.LMTP, Channel.MILTER):
    TEMPFAILS.labels(channel=_channel)  # a series from the first scrape, for rate()
