"""Executions keep the request id of the HTTP request they served (``X-Request-Id``).

Revision ID: 0004_execution_request_id
Revises: 0003_execution_logs
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_execution_request_id"
down_revision = "0003_execution_logs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("request_id", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("request_id")
