"""The ticket directory: add, CSV and JSON-lines import, all-or-nothing with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, select

from worker.errors import InputError
from worker.pipeline import Mailgate
from worker.store.models import Ticket
from worker.tickets import parse_file, upsert


def ticket_ids(gate: Mailgate) -> set[str]:
    with Session(gate.engine) as session:
        return set(session.scalars(select(Ticket.id)).all())


def test_csv_import(gate: Mailgate, tmp_path: Path) -> None:
    """CSV with lists separated by ';' and an optional closed_at."""
    path = tmp_path / "tickets.csv"
    path.write_text(
        "id,kind,status,closed_at,participants,domains\n"
        "5001,technical,open,,a@x.example;b@x.example,x.example\n"
        "5002,customer_care,closed,2026-01-02T03:04:05Z,c@y.example,\n"
    )
    upsert(gate.engine, parse_file(path))
    with Session(gate.engine) as session:
        first = session.get(Ticket, "5001")
        second = session.get(Ticket, "5002")
    assert first is not None and first.participants == ["a@x.example", "b@x.example"]
    assert first.domains == ["x.example"]
    assert second is not None and second.status == "closed"
    assert second.closed_at is not None and second.closed_at.year == 2026


def test_jsonl_import_replaces_existing(gate: Mailgate, tmp_path: Path) -> None:
    """Importing an existing id updates it (the ticket system stays the source of truth)."""
    path = tmp_path / "tickets.jsonl"
    path.write_text(
        '{"id": "1001", "kind": "technical", "status": "closed", '
        '"participants": ["bob@partner.example"]}\n'
    )
    upsert(gate.engine, parse_file(path))
    with Session(gate.engine) as session:
        row = session.get(Ticket, "1001")
    assert row is not None and row.status == "closed" and row.closed_at is not None


@pytest.mark.parametrize(
    "content,expected",
    [
        ("id,kind\n6001,technical\n6002,billing\n", "line 3: field kind"),
        ("id,kind,participants\n6001,technical,not-an-address\n", "line 2: field participants"),
        (
            '{"id": "6001", "kind": "technical"}\n{"id": "6002", "kind": "technical", "x": 1}\n',
            "line 2: field x",
        ),
        ('{"id": "6001", "kind": "technical"}\n{broken\n', "line 2: not JSON"),
        ("id,kind,closed_at\n6001,technical,yesterday\n", "line 2: field closed_at"),
    ],
)
def test_bad_row_is_reported_and_nothing_changes(
    gate: Mailgate, tmp_path: Path, content: str, expected: str
) -> None:
    """A bad row names its line and field; the valid rows before it are not imported."""
    path = tmp_path / ("tickets.jsonl" if content.startswith("{") else "tickets.csv")
    path.write_text(content)
    before = ticket_ids(gate)
    with pytest.raises(InputError) as error:
        upsert(gate.engine, parse_file(path))
    assert expected in str(error.value)
    assert ticket_ids(gate) == before
