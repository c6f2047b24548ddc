"""The tamper-evident chain: how each record's digest is computed and how the chain is verified.

One chain holds every decision row and every other chain record (``chain_event``: anchors,
erasures, the 0008 relink), ordered by one ``seq``. A record's digest is SHA-256 over the
previous record's digest and a canonical JSON of its fields, so editing a field, deleting a
record or reordering records breaks the chain there; the chain head catches deletion of the
newest. Since format 2 (migration 0008) a decision links over ``personal_sha256``, a salted
digest of its personal fields, instead of those fields: erasure removes the fields and the
salt, the link still holds, and an erasure record names every row it emptied. Anchors (RFC
3161 timestamps of an earlier head) catch a chain rewritten from the start with valid links.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import secrets
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64
FORMAT = 2
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
# Covered by the salted ``personal_sha256``; what ``mailgate erase`` removes.
PERSONAL_FIELDS = ("dedup_key", "message_id", "envelope_from", "recipients", "trace")
LINKED_FIELDS = tuple(name for name in CHAINED_FIELDS if name not in PERSONAL_FIELDS)
EVENT_FIELDS = ("seq", "kind", "at", "body")


def canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat(timespec="microseconds")
    return value


def _digest(prev_digest: str, payload: dict[str, Any], prefix: str = "") -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{prev_digest}\n{prefix}{text}".encode()).hexdigest()


def personal_digest(salt: str, fields: dict[str, Any]) -> str:
    """The salted commitment to a decision's personal fields (unguessable once erased)."""
    return _digest(salt, {name: canonical(fields.get(name)) for name in PERSONAL_FIELDS})


def seal(fields: dict[str, Any]) -> dict[str, Any]:
    """The decision's fields with a fresh salt and their personal digest, ready to link."""
    salt = secrets.token_hex(16)
    return {**fields, "personal_salt": salt, "personal_sha256": personal_digest(salt, fields)}


def row_digest(prev_digest: str, fields: dict[str, Any]) -> str:
    payload = {name: canonical(fields.get(name)) for name in LINKED_FIELDS}
    payload["personal_sha256"] = fields["personal_sha256"]
    return _digest(prev_digest, payload)


def event_digest(prev_digest: str, fields: dict[str, Any]) -> str:
    payload = {name: canonical(fields.get(name)) for name in EVENT_FIELDS}
    return _digest(prev_digest, payload, prefix="event ")


def anchored_bytes(seq: int, digest: str) -> bytes:
    """What a TSA timestamps for an anchor: the head's position and digest, one line."""
    return f"mailgate chain {seq} {digest}\n".encode()


# An anchor checker: (token, anchored bytes) -> (problem or None, the TSA's time).
AnchorCheck = Callable[[bytes, bytes], tuple[str | None, datetime | None]]


@dataclass
class VerifyResult:
    ok: bool
    rows: int
    problem: str | None = None
    records: int = 0
    erased: int = 0
    anchors: int = 0
    anchored_seq: int = 0
    anchored_at: datetime | None = None
    erased_seqs: set[int] = field(default_factory=set, repr=False)

    def failed(self, problem: str) -> VerifyResult:
        self.ok, self.problem = False, problem
        return self


def merged(decisions: Iterable[Any], events: Iterable[Any]) -> Iterator[Any]:
    """Decision rows and chain events in one ``seq`` order (both come sorted by seq)."""
    return heapq.merge(decisions, events, key=lambda record: record.seq)


def is_event(record: Any) -> bool:
    return getattr(record, "kind", None) is not None


def verify_chain(
    records: Iterable[Any],
    head_seq: int,
    head_digest: str,
    anchor_check: AnchorCheck | None = None,
    events: Iterable[Any] = (),
) -> VerifyResult:
    """Walk records in ``seq`` order; the first inconsistency is reported by position."""
    wanted = {int(e.body["seq"]) for e in events if e.kind == "anchor"}
    digests: dict[int, str] = {0: GENESIS}
    result, digest, expected = VerifyResult(True, 0), GENESIS, 1
    erased_by: set[int] = set()
    for record in records:
        what = _name(record)
        if record.seq != expected:
            return result.failed(
                f"record seq {expected} is missing (next is {what}): record deleted"
            )
        if record.prev_digest != digest:
            return result.failed(
                f"{what}: previous digest does not match the chain: records reordered or replaced"
            )
        problem = (
            _check_event(record, result, digests, anchor_check, erased_by)
            if is_event(record)
            else _check_decision(record, result)
        )
        if problem:
            return result.failed(f"{what}: {problem}")
        digest, expected = record.digest, expected + 1
        result.records += 1
        if record.seq in wanted:
            digests[record.seq] = digest
    if head_seq != result.records or head_digest != digest:
        return result.failed(
            f"chain head says seq {head_seq} but the last record is seq {result.records}: "
            "newest record(s) deleted or head edited"
        )
    if unlisted := result.erased_seqs - erased_by:
        return result.failed(
            f"decision seq {min(unlisted)}: personal fields emptied without an erasure record"
        )
    return result


def _name(record: Any) -> str:
    if is_event(record):
        return f"{record.kind} record seq {record.seq}"
    return f"decision seq {record.seq} (id {record.id})"


def _check_decision(row: Any, result: VerifyResult) -> str | None:
    fields = {name: getattr(row, name) for name in CHAINED_FIELDS}
    if not hasattr(row, "personal_sha256"):  # an export taken before migration 0008
        return _check_format1(row, fields, result)
    fields["personal_sha256"] = row.personal_sha256
    if row.personal_sha256 is None or row_digest(row.prev_digest, fields) != row.digest:
        return "content does not match its digest: row edited"
    if row.personal_salt is None:
        result.erased += 1
        result.erased_seqs.add(row.seq)
    elif personal_digest(row.personal_salt, fields) != row.personal_sha256:
        return "personal fields do not match their digest: row edited"
    result.rows += 1
    return None


def _check_format1(row: Any, fields: dict[str, Any], result: VerifyResult) -> str | None:
    """Chain format 1: the link covered every field itself."""
    payload = {name: canonical(fields[name]) for name in CHAINED_FIELDS}
    if _digest(row.prev_digest, payload) != row.digest:
        return "content does not match its digest: row edited"
    result.rows += 1
    return None


def _check_event(
    event: Any,
    result: VerifyResult,
    digests: dict[int, str],
    anchor_check: AnchorCheck | None,
    erased_by: set[int],
) -> str | None:
    fields = {name: getattr(event, name) for name in EVENT_FIELDS}
    if event_digest(event.prev_digest, fields) != event.digest:
        return "content does not match its digest: record edited"
    if event.kind == "erasure":
        erased_by.update(int(seq) for seq in event.body.get("seqs", []))
    if event.kind != "anchor":
        return None
    return _check_anchor(event, result, digests, anchor_check)


def _check_anchor(
    event: Any, result: VerifyResult, digests: dict[int, str], anchor_check: AnchorCheck | None
) -> str | None:
    import base64

    seq, claimed = int(event.body["seq"]), str(event.body["digest"])
    recomputed = digests.get(seq)
    if recomputed != claimed:
        return (
            f"the chain up to seq {seq} is not the one the TSA timestamped at "
            f"{event.body.get('time')}: rewritten at or before seq {seq}"
        )
    if anchor_check is not None:
        problem, when = anchor_check(
            base64.b64decode(event.body["token"]), anchored_bytes(seq, claimed)
        )
        if problem:
            return f"timestamp token does not verify: {problem}"
        result.anchored_at = when
    result.anchors += 1
    result.anchored_seq = seq
    return None


def export_record(row: Any) -> dict[str, Any]:
    """One JSON-lines record of the exported chain: every chained field and the digests."""
    if is_event(row):
        record = {name: canonical(getattr(row, name)) for name in EVENT_FIELDS}
        return {"event": {**record, "prev_digest": row.prev_digest, "digest": row.digest}}
    record = {name: canonical(getattr(row, name)) for name in CHAINED_FIELDS}
    record["id"] = row.id
    record["personal_salt"] = row.personal_salt
    record["personal_sha256"] = row.personal_sha256
    record["prev_digest"] = row.prev_digest
    record["digest"] = row.digest
    return record


@dataclass(frozen=True)
class ExportedRecord:
    """A record read back from an export file, shaped like a row for ``verify_chain``."""

    values: dict[str, Any]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name]
        except KeyError:
            raise AttributeError(name) from None


def read_export(lines: Iterable[str]) -> tuple[list[Any], dict[str, Any] | None, str | None]:
    """The records and the head line of an export; a problem when a line is not JSON."""
    records: list[Any] = []
    head: dict[str, Any] | None = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            return records, head, f"line {number}: not JSON"
        if "head" in record:
            head = record["head"]
        elif "event" in record:
            records.append(ExportedRecord(record["event"]))
        else:
            records.append(ExportedRecord({"kind": None, **record}))
    return records, head, None


def verify_export(lines: Iterable[str], anchor_check: AnchorCheck | None = None) -> VerifyResult:
    """Verify an exported chain offline: records in order, then the head line."""
    records, head, problem = read_export(lines)
    if problem:
        return VerifyResult(False, 0, problem)
    if head is None:
        return VerifyResult(False, 0, "no head line: the export is truncated")
    events = [r for r in records if is_event(r)]
    return verify_chain(records, int(head["seq"]), str(head["digest"]), anchor_check, events)
