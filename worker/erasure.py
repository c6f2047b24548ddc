"""``mailgate erase``: a person's data goes, the chain and the counts stay (GDPR Art. 17).

A decision involves an address when it appears in the decision's personal fields, in its
raw message or in its outbox rows. For each such decision (received before ``--before``
if given) the raw message's bytes, the personal fields (``worker.audit.PERSONAL_FIELDS``)
and the salt of their digest go; an address field keeps a keyed pseudonym in the same
domain (``erased.<HMAC>@domain``), so the per-domain and per-decision counts of reports do
not move. Its replies lose their bodies (a reply still queued is not sent), its spooled
reply files are deleted, the address leaves the reply ledger and every ticket's
participants, and one ``erasure`` chain record names the operator, the counts and the seqs
emptied, never the address. On SQLite the file is vacuumed afterwards so that no freed page
keeps the old bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import zlib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Engine, delete, update
from sqlmodel import Session, col, select

from worker.clock import utcnow
from worker.store.db import transaction, writer_turn
from worker.store.models import DecisionRow, OutboxRow, RawMessage, ReplyLedger, Ticket

log = structlog.get_logger("mailgate.erasure")


@dataclass
class Erasure:
    """What one ``erase`` removed (counts only: this is what gets printed and recorded)."""

    decisions: list[int] = field(default_factory=list)  # seqs
    raw_messages: int = 0
    replies: int = 0
    files: int = 0
    tickets: int = 0
    record_seq: int | None = None


class Pseudonyms:
    """Keyed digests of addresses: the same person maps to the same token, not reversibly."""

    def __init__(self, secret: bytes) -> None:
        self.key = hmac.new(secret, b"mailgate erasure pseudonyms", hashlib.sha256).digest()

    def token(self, value: str) -> str:
        return hmac.new(self.key, value.lower().encode(), hashlib.sha256).hexdigest()[:16]

    def address(self, value: str, erased: str) -> str:
        """``value`` unchanged unless it contains the erased address; else a pseudonym."""
        if erased not in value.lower():
            return value
        domain = value.rsplit("@", 1)[1] if "@" in value else "invalid"
        return f"erased.{self.token(erased)}@{domain}"


def involved(session: Session, address: str, before: datetime | None) -> list[DecisionRow]:
    """Every decision whose fields, raw message or outbox rows mention ``address``."""
    statement = select(DecisionRow).order_by(col(DecisionRow.seq))
    if before is not None:
        statement = statement.where(col(DecisionRow.received_at) < before)
    addressed = select(OutboxRow.decision_id, OutboxRow.rcpt_to, OutboxRow.mail_from)
    by_outbox = {
        decision_id
        for decision_id, rcpt_to, mail_from in session.execute(addressed)
        if address in f"{rcpt_to}\n{mail_from}".lower()
    }
    found = []
    # Streamed: the whole decision log is read once, only the matches are kept. An erased
    # row is read too: it may still name another person.
    for row in session.scalars(statement.execution_options(yield_per=1000)):
        fields = [row.envelope_from, row.recipients, row.message_id, row.dedup_key, row.trace]
        if (
            address in json.dumps(fields, ensure_ascii=False).lower()
            or row.id in by_outbox
            or _raw_mentions(session, row.raw_sha256, address)
        ):
            found.append(row)
    return found


def _raw_mentions(session: Session, sha256: str, address: str) -> bool:
    # The bytes only, not an ORM object the session would keep for the whole scan.
    compressed = session.execute(
        select(RawMessage.compressed).where(col(RawMessage.sha256) == sha256)
    ).scalar()
    return compressed is not None and address.encode() in zlib.decompress(compressed).lower()


def _erase_decision(session: Session, row: DecisionRow, erased: str, names: Pseudonyms) -> None:
    values: dict[str, Any] = {
        "envelope_from": names.address(row.envelope_from, erased),
        "recipients": [names.address(r, erased) for r in row.recipients],
        "message_id": None,
        # Still unique (the column is), no longer the Message-ID.
        "dedup_key": f"erased:{names.token(row.dedup_key)}" if row.dedup_key else None,
        "trace": [{"rule": s.get("rule"), "hit": s.get("hit"), "reason": "(erased)"}
                  for s in row.trace],
        "personal_salt": None,
    }  # fmt: skip
    session.execute(update(DecisionRow).where(col(DecisionRow.id) == row.id).values(**values))


def _erase_replies(session: Session, ids: list[int], erased: str, names: Pseudonyms) -> list[int]:
    outbox = session.scalars(select(OutboxRow).where(col(OutboxRow.decision_id).in_(ids))).all()
    for row in outbox:
        values: dict[str, Any] = {
            "body": b"",
            "rcpt_to": names.address(row.rcpt_to, erased),
            "mail_from": names.address(row.mail_from, erased),
            "last_error": "erased" if row.status == "queued" else row.last_error,
        }
        if row.status == "queued":  # an erased person's reply is not sent any more
            values["status"] = "dead"
        session.execute(update(OutboxRow).where(col(OutboxRow.id) == row.id).values(**values))
    return [row.id for row in outbox if row.id is not None]


def _erase_directory(session: Session, erased: str) -> int:
    """The address out of the reply ledger and out of every ticket's participants."""
    for entry in session.scalars(select(ReplyLedger)).all():
        if erased in entry.sender.lower():
            session.execute(delete(ReplyLedger).where(col(ReplyLedger.sender) == entry.sender))
    changed = 0
    for ticket in session.scalars(select(Ticket)).all():
        kept = [p for p in ticket.participants if erased not in p.lower()]
        if kept != ticket.participants:
            session.execute(
                update(Ticket).where(col(Ticket.id) == ticket.id).values(participants=kept)
            )
            changed += 1
    return changed


def erase(gate: Any, address: str, before: datetime | None, operator: str) -> Erasure:
    """Erase ``address`` (see the module docstring); one transaction, then the files."""
    from worker.chain_store import append_event

    engine, settings = gate.engine, gate.settings
    erased, result = address.strip().lower(), Erasure()
    names = Pseudonyms(gate.runtime.secret)  # the reply secret keys the pseudonyms
    now = utcnow()
    with writer_turn(engine), transaction(engine) as session:
        rows = involved(session, erased, before)
        ids = [row.id for row in rows if row.id is not None]
        for row in rows:
            _erase_decision(session, row, erased, names)
        digests = {row.raw_sha256 for row in rows}
        result.raw_messages = _erase_raw(session, digests, now)
        outbox_ids = _erase_replies(session, ids, erased, names) if ids else []
        result.replies = len(outbox_ids)
        result.tickets = _erase_directory(session, erased)
        result.decisions = [row.seq for row in rows]
        body = {
            "operator": operator,
            "decisions": len(rows),
            "seqs": result.decisions,
            "raw_messages": result.raw_messages,
            "replies": result.replies,
            "tickets": result.tickets,
            "before": before.isoformat() if before else None,
        }
        result.record_seq = append_event(session, "erasure", body, now).seq
    result.files = _erase_files(settings.outbox_dir, outbox_ids, erased)
    scrub(engine)
    log.info("erasure", operator=operator, decisions=len(rows), record=result.record_seq)
    return result


def _erase_raw(session: Session, digests: set[str], now: datetime) -> int:
    if not digests:
        return 0
    outcome: Any = session.execute(
        update(RawMessage)
        .where(col(RawMessage.sha256).in_(digests), col(RawMessage.compressed).is_not(None))
        .values(compressed=None, purged_at=now)
    )
    return int(outcome.rowcount or 0)


def _erase_files(directory: Path, outbox_ids: list[int], erased: str) -> int:
    """Spooled replies of the erased decisions, and any other spool file naming the address."""
    from worker.outbox import spool_file

    doomed = {spool_file(directory, row_id) for row_id in outbox_ids}
    if directory.is_dir():
        doomed |= {p for p in directory.iterdir() if p.is_file() and _mentions(p, erased)}
    removed = 0
    for path in doomed:
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            continue
    return removed


def _mentions(path: Path, erased: str) -> bool:
    try:
        return erased.encode() in path.read_bytes().lower()
    except OSError:
        return False


def scrub(engine: Engine) -> None:
    """SQLite keeps deleted bytes in free pages and the WAL: rebuild the file, empty the WAL."""
    if engine.dialect.name != "sqlite":
        return  # PostgreSQL: dead row versions are not in a dump; VACUUM FULL rewrites them
    # The driver connection itself: SQLAlchemy would open a transaction VACUUM refuses.
    raw = engine.raw_connection()
    try:
        driver: Any = raw.driver_connection
        driver.execute("VACUUM")
        driver.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        raw.close()
