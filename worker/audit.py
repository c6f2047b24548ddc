"""The tamper-evident decision chain: how a row's digest is computed and how it is verified.

Each decision row's digest is SHA-256 over the previous row's digest and a canonical JSON of
every decision field, so editing any field, deleting a row or reordering rows breaks the
chain at that row; the chain head row catches deletion of the newest rows. ``verify``
walks the chain in order and names the first row that does not hold.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

from sqlalchemy import Engine
from sqlmodel import Session

from worker.store.models import ChainHead, DecisionRow

GENESIS = "0" * 64
CHAINED_FIELDS = (
    "seq",
    "dedup_key",
    "decision",
    "rule",
    "policy",
    "policy_sha256",
    "ticket",
    "reply_status",
    "reply_reason",
    "message_id",
    "raw_sha256",
    "envelope_from",
    "recipients",
    "received_at",
    "decided_at",
    "channel",
    "trace",
    "duplicate_of",
)


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat(timespec="microseconds")
    return value


def row_digest(prev_digest: str, fields: dict[str, Any]) -> str:
    payload = {name: _canonical(fields.get(name)) for name in CHAINED_FIELDS}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{prev_digest}\n{text}".encode()).hexdigest()


def fields_of(row: DecisionRow) -> dict[str, Any]:
    return {name: getattr(row, name) for name in CHAINED_FIELDS}


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    rows: int
    problem: str | None = None


def verify_chain(rows: Iterable[DecisionRow], head_seq: int, head_digest: str) -> VerifyResult:
    """Walk rows in ``seq`` order; the first inconsistency is reported by position and id."""
    expected_seq, digest, count = 1, GENESIS, 0
    for row in rows:
        if row.seq != expected_seq:
            return VerifyResult(
                False,
                count,
                f"decision seq {expected_seq} is missing "
                f"(next row is seq {row.seq}, id {row.id}): row deleted",
            )
        if row.prev_digest != digest:
            return VerifyResult(
                False,
                count,
                f"decision seq {row.seq} (id {row.id}): previous "
                "digest does not match the chain: rows reordered or replaced",
            )
        if row_digest(digest, fields_of(row)) != row.digest:
            return VerifyResult(
                False,
                count,
                f"decision seq {row.seq} (id {row.id}): content "
                "does not match its digest: row edited",
            )
        digest, expected_seq, count = row.digest, expected_seq + 1, count + 1
    if head_seq != count or head_digest != digest:
        return VerifyResult(
            False,
            count,
            f"chain head says seq {head_seq} but the last row is "
            f"seq {count}: newest row(s) deleted or head edited",
        )
    return VerifyResult(True, count)


def export_record(row: DecisionRow) -> dict[str, Any]:
    """One JSON-lines record of the exported chain: every chained field and both digests."""
    record = {name: _canonical(getattr(row, name)) for name in CHAINED_FIELDS}
    record["id"] = row.id
    record["prev_digest"] = row.prev_digest
    record["digest"] = row.digest
    return record


@dataclass(frozen=True)
class _ExportedRow:
    """A row read back from an export file, shaped like ``DecisionRow`` for ``verify_chain``."""

    values: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None


def verify_export(lines: Iterable[str]) -> VerifyResult:
    """Verify an exported chain offline: rows in order, then the head line."""
    rows: list[Any] = []
    head: dict[str, Any] | None = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            return VerifyResult(False, len(rows), f"line {number}: not JSON")
        if "head" in record:
            head = record["head"]
            continue
        rows.append(_ExportedRow(record))
    if head is None:
        return VerifyResult(False, len(rows), "no head line: the export is truncated")
    return verify_chain(rows, int(head["seq"]), str(head["digest"]))


def verify_database(engine: Engine) -> tuple[VerifyResult, str]:
    """Verify the stored chain against its head; the result and the head digest."""
    from worker.store.repository import iter_chain

    with Session(engine) as session:
        head = session.get(ChainHead, 1)
        assert head is not None  # written by the first migration
        return verify_chain(iter_chain(session), head.seq, head.digest), head.digest


def export_chain(engine: Engine, handle: TextIO) -> tuple[int, str]:
    """Write the chain as JSON lines, then the head; how many rows, and the head digest."""
    from worker.store.repository import iter_chain

    count = 0
    # One read transaction: the rows and the head are one consistent snapshot.
    with Session(engine) as session:
        for row in iter_chain(session):
            handle.write(json.dumps(export_record(row), ensure_ascii=False) + "\n")
            count += 1
        head = session.get(ChainHead, 1)
        assert head is not None
        handle.write(json.dumps({"head": {"seq": head.seq, "digest": head.digest}}) + "\n")
    return count, head.digest
