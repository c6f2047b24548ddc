"""The content access log: who read which message's content, and when.

Every read of a message's content (the message view, its raw bytes, ``mailgate held show``)
calls ``record_content_read`` before the content leaves; ``mailgate audit access`` lists
the log. It lives beside the decision chain, not in it: reading changes no decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, insert, select
from sqlmodel import Session, col

from worker.clock import aware, utcnow
from worker.store.db import transaction, writer_turn
from worker.store.models import ContentAccess, DecisionRow


class ContentRead(StrEnum):
    """What was read: the message view (headers, text, sanitised HTML) or the raw bytes."""

    MESSAGE = "message"
    RAW = "raw"


ACCESS: Any = ContentAccess.__table__  # type: ignore[attr-defined]


def record_content_read(
    engine: Engine, operator: str, decision_id: int, what: ContentRead = ContentRead.MESSAGE
) -> None:
    """Record that ``operator`` read the content of decision ``decision_id`` now.

    Call it before answering with the content: when the record cannot be written, the
    error (``TransientError``) propagates and the content is not shown.
    """
    row = {"operator": operator, "decision_id": decision_id, "what": str(what), "at": utcnow()}
    with writer_turn(engine), transaction(engine) as session:
        session.connection().execute(insert(ACCESS), row)


@dataclass(frozen=True)
class AccessRecord:
    at: datetime
    operator: str
    what: str
    decision_id: int
    public_id: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "operator": self.operator,
            "what": self.what,
            "decision_id": self.decision_id,
            "public_id": self.public_id,
        }


def access_log(engine: Engine, since: datetime | None = None) -> list[AccessRecord]:
    """Every recorded content read (since ``since``), oldest first."""
    statement = (
        select(ACCESS.c.at, ACCESS.c.operator, ACCESS.c.what, ACCESS.c.decision_id)
        .add_columns(col(DecisionRow.public_id))
        .join(DecisionRow, col(DecisionRow.id) == ACCESS.c.decision_id)
        .order_by(ACCESS.c.id)
    )
    if since is not None:
        statement = statement.where(ACCESS.c.at >= since)
    with Session(engine) as session:
        rows = session.connection().execute(statement).all()
    return [AccessRecord(aware(r[0]), r[1], r[2], r[3], r[4]) for r in rows]
