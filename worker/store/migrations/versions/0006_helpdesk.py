"""helpdesk: where each ticket came from, merged tickets, the sync cursor; ids upper-cased

``ticket.source`` says who wrote the row (``manual``, ``import``, ``api``, or the helpdesk
connector's name) and ``ticket.merged_into`` the survivor a merged ticket points to.
``helpdesk_state`` holds each connector's durable sync cursor, the lease that makes one
replica sync at a time, and the counts the metrics read. Ticket ids become upper case, the
canonical form (worker.ticket_ids), unless that would collide with an existing row.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN (no batch copy on SQLite, which would drop 0005's triggers).
    op.add_column(
        "ticket",
        sa.Column("source", sa.String(length=32), nullable=False, server_default="manual"),
    )
    op.add_column("ticket", sa.Column("merged_into", sa.String(length=64), nullable=True))
    op.execute(
        "UPDATE ticket SET id = UPPER(id) WHERE id <> UPPER(id) "
        "AND UPPER(id) NOT IN (SELECT id FROM (SELECT id FROM ticket) AS existing)"
    )
    op.create_table(
        "helpdesk_state",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("owner", sa.String(length=200), nullable=True),
        sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_sync_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("sync_errors", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("delivery_errors", sa.BigInteger(), nullable=False, server_default="0"),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("helpdesk_state")
    with op.batch_alter_table("ticket") as batch:
        batch.drop_column("merged_into")
        batch.drop_column("source")
