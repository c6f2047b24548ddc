"""A past decision as it was recorded, for ``mailgate explain --id``.

``explain FILE`` decides again, so for a message already decided it can only say
``duplicate``. An operator asking "why was this rejected?" wants the trace recorded at the
time: this reads the decision row (by the opaque id of the SMTP answer, or by its ``seq``)
and gives it back as the SPEC's decision object, trace included. Reads only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, select

from worker.errors import UsageProblem
from worker.store.models import DecisionRow

if TYPE_CHECKING:
    from sqlalchemy import Engine


def find_stored(engine: Engine, reference: str) -> dict[str, Any]:
    """The decision object of the row ``reference`` names; ``UsageProblem`` if none does."""
    wanted = reference.strip().lower()
    column = col(DecisionRow.seq) if wanted.isdigit() else col(DecisionRow.public_id)
    value: int | str = int(wanted) if wanted.isdigit() else wanted
    with Session(engine) as session:
        row = session.exec(select(DecisionRow).where(column == value)).first()
    if row is None:
        raise UsageProblem(f"--id: no decision {reference!r} (the id of an SMTP answer, or a seq)")
    return decision_object(row)


def decision_object(row: DecisionRow) -> dict[str, Any]:
    """The stored row in the shape of ``Decision.as_dict()``."""
    return {
        "decision": row.decision,
        "rule": row.rule,
        "policy": row.policy,
        "policy_sha256": row.policy_sha256,
        "ticket": row.ticket,
        "reply": {"status": row.reply_status, "reason": row.reply_reason},
        "message_id": row.message_id,
        "raw_sha256": row.raw_sha256,
        "envelope_from": row.envelope_from,
        "recipients": list(row.recipients),
        "received_at": row.received_at.isoformat(),
        "channel": row.channel,
        "trace": list(row.trace),
        "id": row.id,
        "seq": row.seq,
        "duplicate_of": row.duplicate_of,
        "public_id": row.public_id,
    }
