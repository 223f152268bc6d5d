"""Alembic environment: runs on the connection handed over by :func:`bollard.platform.store.db.migrate`."""

from __future__ import annotations

from alembic import context

from bollard.platform.store.tables import metadata

connection = context.config.attributes.get("connection")
if connection is None:  # pragma: no cover - only reached by a bare `alembic` call
    raise RuntimeError("run migrations through bollard.platform.store.db.migrate()")

context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
