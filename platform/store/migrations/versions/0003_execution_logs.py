"""Executions keep their connector's log lines (DESIGN §8 ``GET /api/executions/{id}``).

Revision ID: 0003_execution_logs
Revises: 0002_approval_reason
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_execution_logs"
down_revision = "0002_approval_reason"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("logs", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("logs")
