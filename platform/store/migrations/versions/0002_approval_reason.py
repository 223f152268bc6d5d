"""Approvals keep the reason a person gave when rejecting (DESIGN §6).

Revision ID: 0002_approval_reason
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_approval_reason"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("approvals") as batch:
        batch.add_column(sa.Column("reason", sa.Text, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("approvals") as batch:
        batch.drop_column("reason")
