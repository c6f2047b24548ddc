"""The decision-log query shared by ``mailgate decisions`` and ``GET /api/decisions``.

Filtering happens in the database, newest first, with a cursor: ``before`` is the ``seq``
of the last row of the previous page, so a page is the same whatever arrives meanwhile and
a log of thousands of rejections can be walked to its end.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from worker.decision import REJECTIONS, OutboxKind
from worker.store.models import DecisionRow, OutboxRow
from worker.ticket_ids import normalize_ticket_id


@dataclass(frozen=True)
class DecisionFilter:
    since: datetime | None = None
    until: datetime | None = None
    decision: str | None = None
    rule: str | None = None
    sender: str | None = None
    ticket: str | None = None
    channel: str | None = None
    limit: int = 100
    public_id: str | None = None
    rejected: bool = False  # every rejected_* decision
    before: int | None = None  # cursor: only rows with a smaller seq


def find_decisions(
    session: Session, wanted: DecisionFilter
) -> list[tuple[DecisionRow, str | None]]:
    """Newest first; each row with the delivery state of its automatic reply, if any."""
    statement = select(DecisionRow).order_by(col(DecisionRow.seq).desc()).limit(wanted.limit)
    if wanted.since:
        statement = statement.where(col(DecisionRow.received_at) >= wanted.since)
    if wanted.until:
        statement = statement.where(col(DecisionRow.received_at) < wanted.until)
    if wanted.decision:
        statement = statement.where(col(DecisionRow.decision) == wanted.decision)
    if wanted.rule:
        statement = statement.where(col(DecisionRow.rule) == wanted.rule)
    if wanted.sender:
        sender = wanted.sender.strip().lower()
        if sender.startswith("@"):  # a whole domain: every sender at it
            found = col(DecisionRow.envelope_from).endswith(sender, autoescape=True)
            statement = statement.where(found)
        else:
            statement = statement.where(col(DecisionRow.envelope_from) == sender)
    if wanted.ticket:  # ids compare case-insensitively (worker.ticket_ids)
        statement = statement.where(
            col(DecisionRow.ticket).in_({wanted.ticket, normalize_ticket_id(wanted.ticket)})
        )
    if wanted.channel:
        statement = statement.where(col(DecisionRow.channel) == wanted.channel)
    if wanted.public_id:
        statement = statement.where(col(DecisionRow.public_id) == wanted.public_id.strip().lower())
    if wanted.rejected:
        statement = statement.where(col(DecisionRow.decision).in_(sorted(REJECTIONS)))
    if wanted.before is not None:
        statement = statement.where(col(DecisionRow.seq) < wanted.before)
    rows = list(session.scalars(statement).all())
    ids = [r.id for r in rows]
    delivery = {
        o.decision_id: o.status
        for o in session.scalars(
            select(OutboxRow).where(
                col(OutboxRow.decision_id).in_(ids), col(OutboxRow.kind) == OutboxKind.AUTO_REPLY
            )
        )
    }
    return [(row, delivery.get(row.id or 0)) for row in rows]


def next_cursor(rows: list[tuple[DecisionRow, str | None]], wanted: DecisionFilter) -> int | None:
    """The ``before`` of the next page, or None when this page was the last."""
    if len(rows) < wanted.limit or not rows:
        return None
    return rows[-1][0].seq
