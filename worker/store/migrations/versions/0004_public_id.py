"""public id: the opaque reference a sender sees in ``250 2.0.0 Ok: queued as <id>``

Random, so it counts nothing; unique, so ops can look one decision up by it. Rows decided
before this revision have none.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("decision", sa.Column("public_id", sa.String(length=32), nullable=True))
    op.create_index("ix_decision_public_id", "decision", ["public_id"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_decision_public_id", table_name="decision")
    op.drop_column("decision", "public_id")
