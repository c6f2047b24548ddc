"""The ticket directory as operators feed it: add one ticket, or import a CSV / JSON-lines file.

Imports are all-or-nothing: every row is validated first (a bad row is reported with its
line number and field), then all rows are upserted in one transaction.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import Engine

from worker.clock import aware, utcnow
from worker.errors import InputError
from worker.files import read_bytes
from worker.mail import normalize_address
from worker.matching import normalize_ticket_id
from worker.store.db import transaction
from worker.store.models import Ticket


class TicketRecord(BaseModel):
    """One ticket as an operator or the ticket system states it."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_-]+$")
    kind: Literal["technical", "customer_care"]
    status: Literal["open", "closed"] = "open"
    closed_at: datetime | None = None
    participants: list[str] = []
    domains: list[str] = []

    @field_validator("id")
    @classmethod
    def _normalize_id(cls, value: str) -> str:
        return normalize_ticket_id(value)

    @field_validator("participants", "domains", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.replace(";", ",").split(",") if part.strip()]
        return value

    @field_validator("participants")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        cleaned = []
        for item in value:
            address = normalize_address(item)
            if not address:
                raise ValueError(f"not an email address: {item!r}")
            cleaned.append(address)
        return cleaned

    @field_validator("domains")
    @classmethod
    def _domains(cls, value: list[str]) -> list[str]:
        cleaned = [d.strip().lower().lstrip("@") for d in value]
        for domain in cleaned:
            if "." not in domain or "@" in domain or " " in domain:
                raise ValueError(f"not a domain: {domain!r}")
        return cleaned

    @field_validator("closed_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        try:  # 9999-12-31T23:59:59-23:59 is a valid ISO time past the end of the calendar
            aware(value).astimezone(UTC)
        except OverflowError:
            raise ValueError("outside the years 1 to 9999 in UTC") from None
        return aware(value)


def describe_error(error: ValidationError, line: int | None = None) -> str:
    first = error.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "(row)"
    where = f"line {line}: " if line is not None else ""
    return f"{where}field {field}: {first['msg']}"


def parse_file(path: Path) -> list[TicketRecord]:
    """Validate every row of a CSV or JSON-lines file; raise ``InputError`` at the first bad."""
    try:
        text = read_bytes(path).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    records: list[TicketRecord] = []
    is_json = path.suffix.lower() in (".jsonl", ".ndjson", ".json") or text.lstrip()[:1] == "{"
    if is_json:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                data = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}: line {number}: not JSON: {exc.msg}") from None
            if not isinstance(data, dict):
                raise InputError(f"{path}: line {number}: expected a JSON object")
            records.append(_validate(path, data, number))
    else:
        reader = csv.DictReader(io.StringIO(text))
        if not reader.fieldnames or "id" not in reader.fieldnames:
            raise InputError(f"{path}: line 1: CSV header must name the field id")
        for row in reader:
            data = {k: v for k, v in row.items() if k is not None and v not in (None, "")}
            if None in row:
                raise InputError(f"{path}: line {reader.line_num}: more values than header fields")
            records.append(_validate(path, data, reader.line_num))
    seen: dict[str, int] = {}
    for index, record in enumerate(records):
        if record.id in seen:
            raise InputError(f"{path}: field id: ticket {record.id} appears twice")
        seen[record.id] = index
    return records


def _validate(path: Path, data: dict[str, Any], line: int) -> TicketRecord:
    try:
        return TicketRecord.model_validate(data)
    except ValidationError as exc:
        raise InputError(f"{path}: {describe_error(exc, line)}") from None


def upsert(engine: Engine, records: list[TicketRecord], source: str = "manual") -> int:
    """Add or replace the tickets in one transaction; ``source`` says who wrote them."""
    now = utcnow()
    with transaction(engine) as session:
        for record in records:
            row = session.get(Ticket, record.id)
            closed_at = record.closed_at
            if record.status == "closed" and closed_at is None:
                closed_at = row.closed_at if row and row.closed_at else now
            values: dict[str, Any] = {
                "kind": record.kind,
                "status": record.status,
                "closed_at": closed_at if record.status == "closed" else None,
                "participants": record.participants,
                "domains": record.domains,
                "updated_at": now,
                "source": source,
            }
            if row is None:
                session.add(Ticket(id=record.id, **values))
            else:
                for key, value in values.items():
                    setattr(row, key, value)
    return len(records)
