"""A stored file remembers the approved write that stored it, so the agent that
requested the write may read it (``GET /api/files/{fileId}``, DESIGN §3, §6).

Revision ID: 0008_file_approvals
Revises: 0007_files
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_file_approvals"
down_revision = "0007_files"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.add_column(sa.Column("approval_id", sa.String(36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("files") as batch:
        batch.drop_column("approval_id")
