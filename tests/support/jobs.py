"""Job queues and state databases for the outbox tests: one fresh state database per test,
SQLite (a file) or PostgreSQL (a new database on the test server, dropped afterwards)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from tests.support.databases import PG_URL, unavailable

BACKENDS = ("sqlite", "postgres")


@asynccontextmanager
async def state_database_url(backend: str, tmp: Path) -> AsyncIterator[str]:
    """A SQLAlchemy URL of an empty state database for ``backend`` (``sqlite`` or ``postgres``)."""
    if backend == "sqlite":
        tmp.mkdir(parents=True, exist_ok=True)
        yield f"sqlite+aiosqlite:///{tmp / 'state.db'}"
        return
    name = f"bollard_jobs_{uuid.uuid4().hex[:8]}"
    try:
        admin = await asyncpg.connect(PG_URL, timeout=5)
    except Exception as e:  # pragma: no cover - depends on the machine
        unavailable(f"PostgreSQL unreachable at {PG_URL}: {e}")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        base = PG_URL.rsplit("/", 1)[0]
        yield f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def until(predicate: Callable[[], Awaitable[bool]], what: str, timeout_s: float = 60.0) -> None:
    """Wait until ``await predicate()`` is true; fail naming ``what`` after ``timeout_s``
    (a bound against hanging, not a timing assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)
