"""The decision log as ``mailgate decisions`` reads it: checked options, then flat records.

The options are checked against the one list of names (``worker.decision``) before the
store is opened; the records are the decision rows, newest first, each with the delivery
state of its automatic reply, as plain values ready for a table, JSON lines or CSV
(``worker.console.print_decisions`` renders them).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from worker.decision import CHANNELS, DECISIONS
from worker.errors import UsageProblem
from worker.store.queries import DecisionFilter, find_decisions

FORMATS = ("table", "json", "csv")
DECISION_COLUMNS = (
    "seq",
    "public_id",
    "received_at",
    "decision",
    "rule",
    "ticket",
    "envelope_from",
    "reply_status",
    "reply_reason",
    "delivery",
    "policy",
    "channel",
    "message_id",
)


def check_options(fmt: str, decision: str | None, channel: str | None) -> None:
    """Refuse a format, decision or channel that is not one of ours, naming the choices."""
    if fmt not in FORMATS:
        raise UsageProblem(f"--format: expected table, json or csv, got {fmt!r}")
    if decision is not None and decision not in DECISIONS:
        raise UsageProblem(
            f"--decision: unknown decision {decision!r}; one of {', '.join(DECISIONS)}"
        )
    if channel is not None and channel not in CHANNELS:
        raise UsageProblem(f"--channel: unknown channel {channel!r}; one of {', '.join(CHANNELS)}")


def decision_records(engine: Engine, wanted: DecisionFilter) -> list[dict[str, Any]]:
    """The decisions ``wanted`` selects, newest first, as plain values by column."""
    with Session(engine) as session:
        found = find_decisions(session, wanted)
    records = []
    for row, delivery in found:
        record = {c: _plain(getattr(row, c, None)) for c in DECISION_COLUMNS}
        record["delivery"] = delivery
        records.append(record)
    return records


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value
