"""The tables, as sqlmodel classes; alembic migrations under ``migrations/`` create them.

Raw messages are content-addressed by their SHA-256 and stored zlib-compressed in the same
database as the decisions, so that one transaction holds both. ``decision.dedup_key`` is
unique: the database, not a check-then-insert, makes a message decided once. Every row
carries its place in the audit hash chain (``seq``, ``prev_digest``, ``digest``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, LargeBinary, String, Text
from sqlmodel import Field, SQLModel


class RawMessage(SQLModel, table=True):
    __tablename__ = "raw_message"

    sha256: str = Field(primary_key=True, max_length=64)
    size: int
    compressed: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    stored_at: datetime
    purged_at: datetime | None = None


class DecisionRow(SQLModel, table=True):
    __tablename__ = "decision"

    id: int | None = Field(default=None, primary_key=True)
    seq: int = Field(unique=True, index=True)
    dedup_key: str | None = Field(default=None, unique=True, max_length=600)
    decision: str = Field(index=True, max_length=64)
    rule: str = Field(max_length=64)
    policy: str | None = Field(default=None, max_length=64)
    policy_sha256: str | None = Field(default=None, max_length=64)
    ticket: str | None = Field(default=None, index=True, max_length=64)
    reply_status: str = Field(max_length=32)
    reply_reason: str | None = Field(default=None, max_length=128)
    message_id: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    raw_sha256: str = Field(foreign_key="raw_message.sha256", max_length=64, index=True)
    envelope_from: str = Field(sa_column=Column(Text, nullable=False))
    recipients: list[str] = Field(sa_column=Column(JSON, nullable=False))
    received_at: datetime = Field(index=True)
    decided_at: datetime
    channel: str = Field(max_length=16)
    trace: list[dict[str, Any]] = Field(sa_column=Column(JSON, nullable=False))
    duplicate_of: int | None = None
    # Random, shown to the sender instead of the row id (which would count decisions).
    public_id: str | None = Field(default=None, unique=True, index=True, max_length=32)
    prev_digest: str = Field(max_length=64)
    digest: str = Field(max_length=64)


class ChainHead(SQLModel, table=True):
    """One row: the newest chain position, locked to serialise appends across replicas."""

    __tablename__ = "chain_head"

    id: int = Field(default=1, primary_key=True)
    seq: int = 0
    digest: str = Field(default="0" * 64, max_length=64)


class Ticket(SQLModel, table=True):
    __tablename__ = "ticket"

    id: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=32)
    status: str = Field(max_length=16)
    closed_at: datetime | None = None
    participants: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    domains: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    updated_at: datetime


class TicketVersion(SQLModel, table=True):
    """One row, bumped by triggers on every change to ``ticket``: tells a process's cached
    ticket directory that it is stale (migration 0005)."""

    __tablename__ = "ticket_version"

    id: int = Field(default=1, primary_key=True)
    version: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))


class ReplyLedger(SQLModel, table=True):
    """When each (sender, reason) pair last got an automatic reply: the rate limit's memory."""

    __tablename__ = "reply_ledger"

    sender: str = Field(sa_column=Column(String(320), primary_key=True))
    reason: str = Field(sa_column=Column(String(64), primary_key=True))
    last_at: datetime


class OutboxRow(SQLModel, table=True):
    __tablename__ = "outbox"

    id: int | None = Field(default=None, primary_key=True)
    decision_id: int = Field(foreign_key="decision.id", index=True)
    kind: str = Field(max_length=32)
    mail_from: str = Field(sa_column=Column(Text, nullable=False))
    rcpt_to: str = Field(sa_column=Column(Text, nullable=False))
    message_id: str = Field(sa_column=Column(Text, nullable=False))
    body: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    status: str = Field(default="queued", index=True, max_length=16)  # an OutboxStatus
    attempts: int = 0
    created_at: datetime
    next_attempt_at: datetime
    expires_at: datetime | None = None  # dead-letter after this
    claimed_until: datetime | None = None  # a dispatcher's lease while it sends
    done_at: datetime | None = None
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class ImapCursor(SQLModel, table=True):
    """How far one mailbox has been decided, and which process polls it now."""

    __tablename__ = "imap_cursor"

    mailbox: str = Field(primary_key=True, max_length=500)  # user@host:port/MAILBOX
    uidvalidity: int = Field(sa_column=Column(BigInteger, nullable=False))
    last_uid: int = Field(sa_column=Column(BigInteger, nullable=False))
    owner: str | None = Field(default=None, max_length=200)
    lease_until: datetime | None = None
    updated_at: datetime
