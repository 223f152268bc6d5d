"""Real databases for the tests: PostgreSQL, MariaDB and (when configured) SQL Server.

Servers come from ``BOLLARD_TEST_PG_URL`` (default
``postgresql://postgres@127.0.0.1:5432/test``), ``BOLLARD_TEST_MYSQL_URL`` (default
``mysql://root@127.0.0.1:3306/test``) and, for SQL Server, ``BOLLARD_TEST_MSSQL_URL``
(no default). An unreachable server skips its tests with the reason, unless
``BOLLARD_REQUIRE_DB=1``, which turns the skip into a failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bollard.platform.sql.engines import EngineHandle, build_engine

PG_URL = os.environ.get("BOLLARD_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("BOLLARD_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
MSSQL_URL = os.environ.get("BOLLARD_TEST_MSSQL_URL", "")
SERVER_ENGINES = {"postgres": PG_URL, "mysql": MYSQL_URL}
_DRIVER = {"postgres": "postgresql+asyncpg", "mysql": "mysql+aiomysql"}


def require_db() -> bool:
    return os.environ.get("BOLLARD_REQUIRE_DB") == "1"


def unavailable(reason: str) -> None:
    """Skip the current test, or fail it when BOLLARD_REQUIRE_DB=1."""
    if require_db():
        pytest.fail(f"{reason} (BOLLARD_REQUIRE_DB=1)")
    pytest.skip(reason)


def credentials_from_url(url: str) -> dict[str, Any]:
    """Credential values (server, port, database, username, password) from a URL."""
    u = make_url(url)
    creds: dict[str, Any] = {"server": u.host or "127.0.0.1", "database": u.database or ""}
    if u.port:
        creds["port"] = u.port
    if u.username:
        creds["username"] = u.username
    if u.password:
        creds["password"] = u.password
    return creds


def pg_credentials() -> dict[str, str]:
    """The test PostgreSQL (:data:`PG_URL`) as the credential values of a ``postgres``
    integration: strings, empty ones left out."""
    return {k: str(v) for k, v in credentials_from_url(PG_URL).items() if v}


@contextlib.asynccontextmanager
async def side_effect_table(name: str, columns: str) -> AsyncIterator[Any]:
    """An asyncpg connection to the test PostgreSQL with the table ``name`` (``columns``,
    SQL) created when missing, where write operations leave their marks. Skips (or fails
    under ``BOLLARD_REQUIRE_DB=1``) when PostgreSQL is unreachable."""
    import asyncpg

    try:
        conn = await asyncpg.connect(PG_URL, timeout=5)
    except Exception as e:  # pragma: no cover
        unavailable(f"PostgreSQL unreachable at {PG_URL}: {e}")
    try:
        await conn.execute(f"CREATE TABLE IF NOT EXISTS {name} ({columns})")
        yield conn
    finally:
        await conn.close()


def admin_url(engine: str) -> str:
    """A SQLAlchemy async URL for setting up fixtures independently of the runner."""
    u = make_url(SERVER_ENGINES[engine]).set(drivername=_DRIVER[engine])
    return u.render_as_string(hide_password=False)


_reachability: dict[str, str | None] = {}


async def _check(engine: str) -> str | None:
    if engine in _reachability:
        return _reachability[engine]
    eng = create_async_engine(admin_url(engine), connect_args=_connect_args(engine))
    reason: str | None = None
    try:
        async with asyncio.timeout(5), eng.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        reason = f"{engine} test server unreachable: {type(exc).__name__}: {exc}"[:300]
    finally:
        await eng.dispose()
    _reachability[engine] = reason
    return reason


def _connect_args(engine: str) -> dict[str, Any]:
    return {"timeout": 3} if engine == "postgres" else {"connect_timeout": 3}


@dataclass
class Db:
    """One engine under test: the runner's handle plus an independent admin path.

    ``table``: a unique table name for this test; dropped afterwards.
    """

    engine: str
    tmp: Path
    table: str = field(default_factory=lambda: f"bt_{uuid.uuid4().hex[:10]}")
    admin: AsyncEngine | None = None
    handles: list[EngineHandle] = field(default_factory=list)
    sqlite_file: Path | None = None

    @property
    def credentials(self) -> dict[str, Any]:
        if self.engine == "sqlite":
            assert self.sqlite_file is not None
            return {"database": str(self.sqlite_file)}
        return credentials_from_url(SERVER_ENGINES[self.engine])

    def handle(
        self, security: dict[str, Any] | None = None, *, allow_privileged_roles: bool = True, **config: Any
    ) -> EngineHandle:
        """A runner engine for this database (disposed after the test). The test servers'
        users are superusers: the engine allows privileged roles unless told otherwise
        (``BOLLARD_SQL_ALLOW_PRIVILEGED_ROLES``, DESIGN §5)."""
        cfg = {"engine": self.engine, "security": security or {}, **config}
        h = build_engine(
            self.engine,
            cfg,
            self.credentials,
            slug="tests",
            integration_dir=self.tmp,
            # not the integration folder: sqlite refuses files of the data dir outside sqlite/<slug>/
            data_dir=self.tmp / "data",
            allow_privileged_roles=allow_privileged_roles,
        )
        self.handles.append(h)
        return h

    async def execute(self, *statements: str) -> None:
        """Run setup statements outside the runner (autocommitted)."""
        if self.engine == "sqlite":
            assert self.sqlite_file is not None
            con = sqlite3.connect(self.sqlite_file)
            try:
                for s in statements:
                    con.execute(s)
                con.commit()
            finally:
                con.close()
            return
        assert self.admin is not None
        async with self.admin.begin() as conn:
            for s in statements:
                await conn.execute(text(s))

    async def fetch(self, statement: str) -> list[tuple[Any, ...]]:
        """Rows of ``statement``, read outside the runner."""
        if self.engine == "sqlite":
            assert self.sqlite_file is not None
            con = sqlite3.connect(self.sqlite_file)
            try:
                return [tuple(r) for r in con.execute(statement).fetchall()]
            finally:
                con.close()
        assert self.admin is not None
        async with self.admin.connect() as conn:
            return [tuple(r) for r in (await conn.execute(text(statement))).all()]

    async def close(self) -> None:
        for h in self.handles:
            await h.dispose()
        if self.admin is not None:
            try:
                await self.execute(f"DROP TABLE IF EXISTS {self.table}")
            finally:
                await self.admin.dispose()


async def open_db(engine: str, tmp: Path) -> AsyncIterator[Db]:
    """Yield a ``Db`` for ``engine`` (skipping or failing when it is unreachable)."""
    if engine == "sqlite":
        tmp.mkdir(parents=True, exist_ok=True)
        db = Db(engine, tmp, sqlite_file=tmp / "test.db")
        sqlite3.connect(db.sqlite_file).close()
    else:
        reason = await _check(engine)
        if reason:
            unavailable(reason)
        db = Db(engine, tmp, admin=create_async_engine(admin_url(engine), connect_args=_connect_args(engine)))
    try:
        yield db
    finally:
        await db.close()


@contextlib.asynccontextmanager
async def fresh_pg_state_database(prefix: str = "bollard_state") -> AsyncIterator[str]:
    """A new, empty PostgreSQL database for the shared state of several replicas
    (``postgresql+asyncpg://…`` URL), dropped afterwards with every connection to it:
    a test module gets its own rate-limit rows, approvals and LISTEN channel traffic.
    Skips (or fails under ``BOLLARD_REQUIRE_DB=1``) when PostgreSQL is unreachable."""
    import asyncpg

    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    try:
        admin = await asyncpg.connect(PG_URL, timeout=5)
    except Exception as e:
        unavailable(f"PostgreSQL unreachable at {PG_URL}: {e}")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        base = make_url(PG_URL).set(drivername="postgresql+asyncpg", database=name)
        yield base.render_as_string(hide_password=False)
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
