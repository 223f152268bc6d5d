"""Connecting to the state database and applying migrations at start (DESIGN §11)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def create_engine(url: str) -> AsyncEngine:
    """An async engine for the state database URL.

    SQLite URLs get a busy timeout so concurrent writers wait instead of failing; the
    ``postgresql://`` and ``sqlite://`` spellings are mapped to their async drivers.
    """
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+asyncpg://" + url.split("://", 1)[1]
    elif url.startswith("sqlite://") and "+aiosqlite" not in url:
        url = "sqlite+aiosqlite://" + url.split("://", 1)[1]
    if url.startswith("sqlite"):
        return create_async_engine(url, connect_args={"timeout": 30})
    return create_async_engine(url, pool_pre_ping=True)


def private_sqlite_file(engine: AsyncEngine) -> None:
    """Create the SQLite state database file 0600 before SQLite first opens it (SQLite
    would create it 0644 under the usual umask; its journals copy the file's mode), and
    take group and other bits off an existing one: it holds token hashes, encrypted
    credentials and approvals (hardening issue item 23). Other databases: nothing."""
    database = engine.url.database
    if engine.url.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return
    if database.startswith("file:"):  # a URI filename: leave it to the operator
        return
    path = Path(database)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    with contextlib.suppress(PermissionError):  # a file we do not own is the operator's choice
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)


def _upgrade(connection: Connection) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "heads")  # branches merged from parallel work all apply


async def migrate(engine: AsyncEngine) -> None:
    """Apply every pending Alembic migration (idempotent; safe on each start).

    Concurrent starts against PostgreSQL are serialised with an advisory lock so two
    replicas never run the same migration at once.
    """
    private_sqlite_file(engine)
    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            await conn.exec_driver_sql("SELECT pg_advisory_xact_lock(727274)")
        await conn.run_sync(_upgrade)
