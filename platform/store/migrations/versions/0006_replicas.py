"""Several replicas on one PostgreSQL (DESIGN §12): shared rate limits and concurrency
slots (PostgreSQL only, ``UNLOGGED``: coordination state a database crash may reset), and
a lease on ``executing`` approvals so one left by a killed replica is failed (never re-run)
as soon as its lease lapses.

Revision ID: 0006_replicas
Revises: 0005_jobs_webhooks
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_replicas"
down_revision = "0005_jobs_webhooks"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("approvals") as batch:
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE UNLOGGED TABLE bollard_rate_limits ("
        " key text PRIMARY KEY, tat float8 NOT NULL, seen float8 NOT NULL, admitted boolean NOT NULL)"
    )
    op.execute(
        "CREATE UNLOGGED TABLE bollard_slots ("
        " key text NOT NULL, slot integer NOT NULL, holder text, expires float8 NOT NULL,"
        " PRIMARY KEY (key, slot))"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TABLE IF EXISTS bollard_slots")
        op.execute("DROP TABLE IF EXISTS bollard_rate_limits")
    with op.batch_alter_table("approvals") as batch:
        batch.drop_column("lease_until")
