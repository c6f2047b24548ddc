"""chain format 2: decisions link over a salted digest of their personal fields; chain events

Format 1 linked each decision over every field, so erasing a person's address (GDPR Art. 17)
broke the chain. Format 2 links over ``personal_sha256`` = SHA-256(salt, canonical JSON of
dedup_key, message_id, envelope_from, recipients, trace) instead; erasure drops the salt and
the fields and the link still holds. ``chain_event`` holds the chain records that are not
decisions (anchors, erasures) on the same ``seq``.

Rows written by earlier releases are relinked here, in order. The format-1 chain is verified
first with the format-1 rule frozen below, and a ``relink`` record appended after the last
row keeps the outcome and the format-1 head digest, so an export taken before the upgrade
can still be matched. A broken format-1 chain does not stop the upgrade: the relink record
says where it was broken, for ever.

Revision ID: 0008
Revises: 0005
"""

import hashlib
import json
import secrets
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

V1_FIELDS = (
    "seq", "dedup_key", "decision", "rule", "policy", "policy_sha256", "ticket",
    "reply_status", "reply_reason", "message_id", "raw_sha256", "envelope_from",
    "recipients", "received_at", "decided_at", "channel", "trace", "duplicate_of",
)  # fmt: skip
PERSONAL = ("dedup_key", "message_id", "envelope_from", "recipients", "trace")


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return aware.astimezone(UTC).isoformat(timespec="microseconds")
    return value


def _digest(prev: str, payload: dict[str, Any], prefix: str = "") -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{prev}\n{prefix}{text}".encode()).hexdigest()


def _json(value: Any) -> Any:
    # JSON columns come back decoded from PostgreSQL and as text from a SQLite text read.
    return json.loads(value) if isinstance(value, str) else value


def _datetime(value: Any) -> Any:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def upgrade() -> None:
    op.add_column("decision", sa.Column("personal_salt", sa.String(32), nullable=True))
    op.add_column("decision", sa.Column("personal_sha256", sa.String(64), nullable=True))
    events = op.create_table(
        "chain_event",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("seq", sa.Integer(), nullable=False, unique=True, index=True),
        sa.Column("kind", sa.String(32), nullable=False, index=True),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("prev_digest", sa.String(64), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
    )
    _relink(events)


def _relink(events: sa.Table) -> None:
    bind = op.get_bind()
    decision = sa.table(
        "decision",
        *(sa.column(name) for name in ("id", *V1_FIELDS, "prev_digest", "digest")),
        sa.column("personal_salt"),
        sa.column("personal_sha256"),
    )
    old, new, problem, count, last = "0" * 64, "0" * 64, None, 0, 0
    while True:
        rows = bind.execute(
            sa.select(decision).where(decision.c.seq > last).order_by(decision.c.seq).limit(500)
        ).mappings().all()  # fmt: skip
        if not rows:
            break
        for row in rows:
            fields = {name: row[name] for name in V1_FIELDS}
            for name in ("recipients", "trace"):
                fields[name] = _json(fields[name])
            for name in ("received_at", "decided_at"):
                fields[name] = _datetime(fields[name])
            payload = {name: _canonical(fields[name]) for name in V1_FIELDS}
            intact = row["prev_digest"] == old and _digest(old, payload) == row["digest"]
            if problem is None and not intact:
                problem = f"decision seq {row['seq']} did not verify under format 1"
            old = row["digest"]
            salt = secrets.token_hex(16)
            personal = _digest(salt, {name: payload[name] for name in PERSONAL})
            linked = {k: v for k, v in payload.items() if k not in PERSONAL}
            linked["personal_sha256"] = personal
            digest = _digest(new, linked)
            bind.execute(
                sa.update(decision).where(decision.c.id == row["id"]).values(
                    personal_salt=salt, personal_sha256=personal, prev_digest=new, digest=digest
                )
            )  # fmt: skip
            new, count, last = digest, count + 1, row["seq"]
    head = bind.execute(sa.text("SELECT seq, digest FROM chain_head WHERE id = 1")).one()
    if count == 0:
        return  # a new database: nothing to relink, nothing to record
    if head.seq != count or head.digest != old:
        problem = problem or f"chain head said seq {head.seq}, rows ended at seq {count}"
    now = datetime.now(UTC).replace(tzinfo=None)
    body = {"from_format": 1, "to_format": 2, "rows": count, "format1_head": head.digest,
            "format1_verified": problem is None, "format1_problem": problem}  # fmt: skip
    fields = {"seq": count + 1, "kind": "relink", "at": _canonical(now), "body": body}
    digest = _digest(new, fields, prefix="event ")
    bind.execute(
        sa.insert(events).values(
            seq=count + 1, kind="relink", at=now, body=body, prev_digest=new, digest=digest
        )
    )
    bind.execute(
        sa.text("UPDATE chain_head SET seq = :seq, digest = :digest WHERE id = 1"),
        {"seq": count + 1, "digest": digest},
    )


def downgrade() -> None:
    raise NotImplementedError("chain format 2 cannot go back: format 1 breaks on erasure")
