"""held mail and operators: records that act on an earlier decision, and content reads

``decision.acts_on`` points an operator's (or the hold expiry's) record at the decision it
acts on; it is unique, so a held message is acted on once, whichever replica tries first.
``content_access`` lists who read which message's content, and when.

Revision ID: 0007
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("decision", sa.Column("acts_on", sa.Integer(), nullable=True))
    op.create_index("ix_decision_acts_on", "decision", ["acts_on"], unique=True)
    op.create_table(
        "content_access",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("operator", sa.String(length=64), nullable=False),
        sa.Column("decision_id", sa.Integer(), sa.ForeignKey("decision.id"), nullable=False),
        sa.Column("what", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_content_access_at", "content_access", ["at"])


def downgrade() -> None:
    op.drop_index("ix_content_access_at", table_name="content_access")
    op.drop_table("content_access")
    op.drop_index("ix_decision_acts_on", table_name="decision")
    op.drop_column("decision", "acts_on")
