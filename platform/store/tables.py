"""SQLAlchemy Core tables of the state database.

The schema is created and changed only by the Alembic migrations in ``migrations/``;
these definitions mirror them for queries. Timestamps are timezone-aware UTC.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("name", String(200), nullable=False, default=""),
    Column("role", String(16), nullable=False),
    # SHA-256 of the token; the token itself is never stored.
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_used_at", DateTime(timezone=True), nullable=True),
)

credentials = Table(
    "credentials",
    metadata,
    Column("integration", String(64), primary_key=True),
    Column("credential_id", String(64), primary_key=True),
    # Fernet token of the JSON object of values (DESIGN §7).
    Column("ciphertext", LargeBinary, nullable=False),
    # The key names that are set, in clear, so listing needs no decryption.
    Column("keys", JSON, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

approvals = Table(
    "approvals",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("integration", String(64), nullable=False),
    Column("operation", String(128), nullable=False),
    Column("credential_id", String(64), nullable=False),
    Column("params", JSON, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("version", Integer, nullable=False),
    Column("summary", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("requested_by", String(36), nullable=True),
    Column("requested_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("decided_by", String(36), nullable=True),
    Column("decided_at", DateTime(timezone=True), nullable=True),
    Column("started_at", DateTime(timezone=True), nullable=True),
    Column("finished_at", DateTime(timezone=True), nullable=True),
    Column("result", JSON, nullable=True),
    Column("error_code", String(64), nullable=True),
    Column("error_message", Text, nullable=True),
    # What the person who rejected it wrote (DESIGN §6); migration 0002.
    Column("reason", Text, nullable=True),
    # While executing: until when the replica running it vouches for it (renewed while it
    # runs); past it, the replica died and the approval is failed, never re-run (0004).
    Column("lease_until", DateTime(timezone=True), nullable=True),
    Index("ix_approvals_status", "status"),
    Index("ix_approvals_integration", "integration"),
)

executions = Table(
    "executions",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("duration_ms", Float, nullable=True),
    Column("token_id", String(36), nullable=True),
    Column("caller", String(32), nullable=False, default="api"),
    Column("integration", String(64), nullable=False),
    Column("operation", String(128), nullable=False),
    Column("version", Integer, nullable=True),
    Column("credential_id", String(64), nullable=True),
    Column("params", JSON, nullable=True),
    Column("status", String(24), nullable=False),
    Column("error_code", String(64), nullable=True),
    Column("error_message", Text, nullable=True),
    Column("approval_id", String(36), nullable=True),
    Column("mock", Boolean, nullable=False, default=False),
    # The connector's print/ctx.log lines, redacted and capped; migration 0003.
    Column("logs", JSON, nullable=True),
    # The X-Request-Id of the HTTP request the call served (platform/request_id.py); migration 0004.
    Column("request_id", String(64), nullable=True),
    # The FileReferences the connector stored during the call (ctx.files); migration 0007.
    Column("files", JSON, nullable=True),
    Index("ix_executions_started_at", "started_at"),
    Index("ix_executions_integration", "integration"),
)

# The in-process job queue (platform/jobs/inprocess.py; SQLite default). On PostgreSQL
# jobs live in pgqueuer's tables instead. Migration 0005.
jobs = Table(
    "jobs",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("payload", JSON, nullable=False),
    Column("status", String(16), nullable=False),  # queued | running | dead
    Column("attempts", Integer, nullable=False, default=0),
    Column("run_after", DateTime(timezone=True), nullable=False),
    Column("lease_until", DateTime(timezone=True), nullable=True),
    Column("worker", String(64), nullable=True),
    Column("unique_key", String(128), nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_jobs_due", "status", "run_after"),
    Index("ix_jobs_unique_key", "unique_key"),
)

# One signed webhook event to one endpoint (platform/webhooks/); migration 0005.
webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("endpoint", String(64), nullable=False),
    Column("url", Text, nullable=False),
    Column("event_id", String(36), nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("approval_id", String(36), nullable=True),
    # The event body exactly as it is signed and sent (UTF-8 JSON text).
    Column("body", Text, nullable=False),
    Column("status", String(16), nullable=False),  # pending | delivered | dead
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_status_code", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_attempt_at", DateTime(timezone=True), nullable=True),
    Column("next_attempt_at", DateTime(timezone=True), nullable=True),
    Column("delivered_at", DateTime(timezone=True), nullable=True),
    Column("redelivery_of", String(36), nullable=True),
    Index("ix_webhook_deliveries_created_at", "created_at"),
    Index("ix_webhook_deliveries_status", "status"),
)

# Files stored through ctx.files (DESIGN §3): the bytes live in <data_dir>/files/<id>,
# never under the connector's file name; migration 0007.
files = Table(
    "files",
    metadata,
    Column("id", String(36), primary_key=True),
    Column("integration", String(64), nullable=False),
    Column("operation", String(128), nullable=False),
    Column("credential_id", String(64), nullable=True),
    Column("token_id", String(36), nullable=True),  # the caller's token: it (and admins) may read it
    Column(
        "approval_id", String(36), nullable=True
    ),  # an approved write stored it (0008): its requester may read it
    Column("file_name", String(255), nullable=False),
    Column("content_type", String(255), nullable=False),
    Column("size", Integer, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_files_expires_at", "expires_at"),
)
