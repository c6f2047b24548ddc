"""Reading and pruning the ticket directory: list, show, remove, and the matchability check.

``tickets list``/``show`` and ``GET /api/tickets`` read the same rows through ``as_json``;
``remove`` deletes one row (the version trigger tells every process's cache). ``unmatchable``
is why ``tickets add`` refuses an id that no configured reference could ever carry: a
ticket nobody can reach by mail is a customer told to open a new one.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from sqlalchemy import Engine, delete
from sqlmodel import Session, col, select

from worker.helpdesk.references import HelpdeskReferences, could_match, rt_ticket_in_message_id
from worker.policy.document import Policy
from worker.store.db import transaction, writer_turn
from worker.store.models import Ticket
from worker.ticket_ids import normalize_ticket_id

COLUMNS = ("id", "kind", "status", "closed_at", "participants", "domains", "source", "merged_into")


def as_json(row: Ticket) -> dict[str, Any]:
    return {
        "id": row.id,
        "kind": row.kind,
        "status": row.status,
        "closed_at": row.closed_at.isoformat() if row.closed_at else None,
        "participants": list(row.participants),
        "domains": list(row.domains),
        "source": row.source,
        "merged_into": row.merged_into,
        "updated_at": row.updated_at.isoformat() if row.updated_at else None,
    }


def list_tickets(engine: Engine, status: str | None = None, limit: int = 10_000) -> list[Ticket]:
    with Session(engine) as session:
        statement = select(Ticket).order_by(col(Ticket.updated_at).desc(), col(Ticket.id))
        if status:
            statement = statement.where(col(Ticket.status) == status)
        return list(session.scalars(statement.limit(limit)).all())


def get_ticket(engine: Engine, ticket_id: str) -> Ticket | None:
    with Session(engine) as session:
        return session.get(Ticket, normalize_ticket_id(ticket_id))


def remove_ticket(engine: Engine, ticket_id: str) -> bool:
    with writer_turn(engine), transaction(engine) as session:
        result = session.execute(
            delete(Ticket).where(col(Ticket.id) == normalize_ticket_id(ticket_id))
        )
        return bool(getattr(result, "rowcount", 0))


def render(rows: list[Ticket], fmt: str) -> str:
    """The rows as ``json`` (one object per line), ``csv`` or an aligned ``table``."""
    records = [as_json(row) for row in rows]
    if fmt == "json":
        return "\n".join(json.dumps(r, sort_keys=True) for r in records)
    flat = [
        {
            k: ";".join(v) if isinstance(v, list) else ("" if v is None else str(v))
            for k, v in r.items()
        }
        for r in records
    ]
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(flat)
        return buffer.getvalue().rstrip("\n")
    widths = {c: max([len(c), *(len(r[c]) for r in flat)]) for c in COLUMNS}
    lines = ["  ".join(c.ljust(widths[c]) for c in COLUMNS).rstrip()]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in COLUMNS).rstrip() for r in flat]
    return "\n".join(lines)


def unmatchable(ticket_id: str, policy: Policy | None, helpdesk: HelpdeskReferences) -> str | None:
    """Why no configured reference could carry this id, or None when one could."""
    if policy is None:
        return None
    patterns = [*policy.document.matching.tag_patterns(helpdesk.rt_name), *helpdesk.subject_tags]
    ticket = normalize_ticket_id(ticket_id)
    if any(could_match(pattern, ticket) for pattern in patterns):
        return None
    if helpdesk.rt_message_ids and rt_ticket_in_message_id(f"<rt-5-1-1-1.{ticket}-0-0@x>"):
        return None
    return (
        f"ticket {ticket} could never be matched: no subject tag of policy {policy.id} "
        f"takes it ({', '.join(patterns)}); name the helpdesk's preset in [matching] "
        "subject_tags (wildix, rt, znuny, otrs, zammad, osticket, freshdesk, jira)"
    )
