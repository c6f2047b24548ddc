"""ticket version: a counter every change to the ticket table bumps, in the same transaction

Deciding processes keep the ticket directory in memory and read this one row to know when
their copy is stale. Triggers, not application code, bump it, so that every writer counts:
``mailgate tickets``, the web form, another replica, an operator's SQL.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BUMP = "UPDATE ticket_version SET version = version + 1 WHERE id = 1"


def upgrade() -> None:
    table = op.create_table(
        "ticket_version",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
    )
    op.bulk_insert(table, [{"id": 1, "version": 0}])
    if op.get_context().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION mailgate_ticket_version_bump() RETURNS trigger AS $$ "
            f"BEGIN {BUMP}; RETURN NULL; END $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER ticket_version_bump AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
            "ON ticket FOR EACH STATEMENT EXECUTE FUNCTION mailgate_ticket_version_bump()"
        )
        return
    # SQLite has row triggers only, one per event.
    for event in ("INSERT", "UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER ticket_version_{event.lower()} AFTER {event} ON ticket "
            f"BEGIN {BUMP}; END"
        )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute("DROP TRIGGER ticket_version_bump ON ticket")
        op.execute("DROP FUNCTION mailgate_ticket_version_bump()")
    else:
        for event in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER ticket_version_{event}")
    op.drop_table("ticket_version")
