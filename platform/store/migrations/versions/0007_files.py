"""Files stored by connectors through ``ctx.files`` (DESIGN §3), and the files of each
execution in its record.

Revision ID: 0007_files
Revises: 0006_replicas
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_files"
down_revision = "0006_replicas"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "files",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("integration", sa.String(64), nullable=False),
        sa.Column("operation", sa.String(128), nullable=False),
        sa.Column("credential_id", sa.String(64), nullable=True),
        sa.Column("token_id", sa.String(36), nullable=True),
        sa.Column("file_name", sa.String(255), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_files_expires_at", "files", ["expires_at"])
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("files", sa.JSON, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("files")
    op.drop_index("ix_files_expires_at", "files")
    op.drop_table("files")
