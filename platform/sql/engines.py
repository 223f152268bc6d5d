"""SQLAlchemy engines and pools for SQL integrations (DESIGN §5).

One engine and pool per (integration slug, credential id), built from the manifest's
``sqlConnectionConfig`` and the credential values (connection.py), rebuilt when either
changes and disposed at shutdown (``EngineCache``, engine_cache.py).

Engines: ``postgres`` → ``postgresql+asyncpg``; ``mysql`` → ``mysql+aiomysql`` (MySQL
and MariaDB); ``sqlite`` → ``sqlite+aiosqlite`` (sqlite.py); ``mssql`` →
``mssql+pymssql``, a synchronous driver run in worker threads behind the same
``EngineHandle.run``. PostgreSQL reads use a second pool of the same (integration,
credential), opened on the first read (``EngineHandle.run_read``, pg_reads.py); a
read-only integration never opens the other pool.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bollard.platform.errors import SqlError

from .cancel import kill_mysql_query, mysql_thread_id
from .connection import (
    DEFAULT_CONNECT_TIMEOUT_MS,
    DEFAULT_POOL_SIZE,
    DEFAULT_QUERY_TIMEOUT_MS,
    ENGINES,
    build_url,
    client_ssl_context,
    connection_options,
    describe_target,
    pg_ssl,
    pool_size,
    positive_int,
    query_timeout_ms,
    tls_mode,
)
from .errors import connect_error
from .mysql import connect_single_statement, mysql_session_resetter, require_mysql_tls
from .pg_reads import ReadPool
from .roles import check_pg_role
from .sqlite import SqliteDeadline, build_sqlite_engine, seed_sqlite
from .sqlite_reads import SqliteReadPool

__all__ = [
    # connection.py's defaults, named here too for the callers of build_engine
    "DEFAULT_CONNECT_TIMEOUT_MS",
    "DEFAULT_POOL_SIZE",
    "DEFAULT_QUERY_TIMEOUT_MS",
    "ENGINES",
    "EngineHandle",
    "build_engine",
]

T = TypeVar("T")

# Connections are replaced after this long (seconds), so server-side idle limits and
# failovers do not hand us dead sockets.
_POOL_RECYCLE_S = 1800


@dataclass
class EngineHandle:
    """A live engine for one (integration, credential), behind one async interface.

    ``engine``: the Bollard engine name. ``default_timeout_ms``: the server-side
    statement timeout set on new connections. ``secrets``: strings redacted from every
    message. Use ``run(fn)`` to call ``fn(connection)`` with a synchronous SQLAlchemy
    ``Connection`` (through ``AsyncConnection.run_sync`` for async drivers, in a worker
    thread for pymssql). ``allow_privileged_roles``: PostgreSQL connections whose role
    is a superuser or holds server-file/program/signal roles are not refused (roles.py).
    """

    engine: str
    async_engine: AsyncEngine | None
    sync_engine: Engine | None
    default_timeout_ms: int
    pool_size: int
    target: str
    secrets: tuple[str, ...]
    sqlite_path: Path | None = None
    sqlite_seed: Path | None = None
    sqlite_deadlines: weakref.WeakKeyDictionary[Any, SqliteDeadline] = field(
        default_factory=weakref.WeakKeyDictionary, repr=False
    )
    compiled_cache: weakref.WeakKeyDictionary[Any, tuple[str, list[str]]] = field(
        default_factory=weakref.WeakKeyDictionary, repr=False
    )
    _prepared: bool = field(default=False, repr=False)
    _prepare_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    # PostgreSQL: asyncpg.connect arguments of the read pool (see ``run_read``).
    read_connect: dict[str, Any] | None = field(default=None, repr=False)
    allow_privileged_roles: bool = False
    # MariaDB/MySQL: aiomysql.connect arguments of the connection that kills a timed-out
    # query (cancel.py).
    kill_connect: dict[str, Any] | None = field(default=None, repr=False)
    _reads: ReadPool | None = field(default=None, init=False, repr=False)
    # SQLite: the read connections (sqlite_reads.py), made from these two.
    sqlite_field: str = "database"
    sqlite_busy_s: float = 1.0
    _sqlite_reads: SqliteReadPool | None = field(default=None, init=False, repr=False)
    # MariaDB/MySQL connections being reset and checked in after their call returned.
    _closing: set[asyncio.Task[None]] = field(default_factory=set, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.engine == "sqlite" and self.sqlite_path is not None:
            self._sqlite_reads = SqliteReadPool(
                self.sqlite_path, field=self.sqlite_field, size=self.pool_size, busy_s=self.sqlite_busy_s
            )
        if self.read_connect is not None:
            self._reads = ReadPool(
                self.read_connect,
                max_size=self.pool_size,
                target=self.target,
                connect_error=self._connect_error,
                init=None if self.allow_privileged_roles else check_pg_role,
            )

    def sqlite_deadline(self, connection: Connection) -> SqliteDeadline | None:
        """The progress-handler deadline of a pooled sqlite connection, if any."""
        driver = connection.connection.driver_connection
        return self.sqlite_deadlines.get(driver)

    async def _prepare(self) -> None:
        if self._prepared:
            return
        async with self._prepare_lock:
            if self._prepared:
                return
            path, seed = self.sqlite_path, self.sqlite_seed
            if path is not None and seed is not None and not path.exists():
                try:
                    await asyncio.to_thread(seed_sqlite, path, seed)
                except (OSError, sqlite3.Error) as exc:
                    raise SqlError(
                        "config_error", f"could not create the database from {seed.name}: {exc}"
                    ) from None
            self._prepared = True

    def _connect_error(self, exc: BaseException) -> SqlError:
        return connect_error(exc, self.secrets, self.target)

    async def run(self, fn: Callable[[Connection], T]) -> T:
        """Check a connection out of the pool and call ``fn`` with it.

        Failures to connect become SqlError("connection_failed"); exceptions from ``fn``
        propagate unchanged (the runner classifies them). MariaDB/MySQL: when the call is
        cancelled (its client deadline), its query is killed on the server and waited
        for before the connection is discarded and its slot freed (cancel.py).
        """
        await self._prepare()
        if self.async_engine is not None:
            aconn = self.async_engine.connect()
            try:
                await aconn.start()
            except Exception as exc:
                raise self._connect_error(exc) from None
            thread_id = None
            if self.kill_connect is not None:
                raw = await aconn.get_raw_connection()
                thread_id = mysql_thread_id(raw.driver_connection)
            try:
                result = await aconn.run_sync(fn)
            except asyncio.CancelledError:
                if thread_id is not None and self.kill_connect is not None:
                    await asyncio.shield(kill_mysql_query(self.kill_connect, thread_id))
                    await asyncio.shield(aconn.invalidate())
                await aconn.close()
                raise
            except BaseException:
                await aconn.close()
                raise
            if self.kill_connect is None:
                await aconn.close()
                return result
            # MariaDB/MySQL: the check-in resets the session (COM_RESET_CONNECTION, then
            # autocommit: two round trips) before the connection can serve again; the
            # caller has its result and does not wait for that (like pg_reads' reset).
            task = asyncio.get_running_loop().create_task(aconn.close())
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)
            return result
        assert self.sync_engine is not None
        sync_engine = self.sync_engine

        def in_thread() -> T:
            try:
                conn = sync_engine.connect()
            except Exception as exc:
                raise self._connect_error(exc) from None
            with conn:
                return fn(conn)

        return await asyncio.to_thread(in_thread)

    async def run_sqlite_read(self, fn: Callable[[sqlite3.Connection, SqliteDeadline], T]) -> T:
        """Call ``fn(connection, deadline)`` in a worker thread with a read-only
        connection of the SQLite database (sqlite_reads.py: one thread hand-off per
        read), after creating the database from its seed script if needed."""
        assert self._sqlite_reads is not None
        await self._prepare()
        return await self._sqlite_reads.run(fn)

    @property
    def read_pool(self) -> Any:
        """The PostgreSQL read pool (an ``asyncpg.Pool``), or None until the first read."""
        return self._reads.pool if self._reads is not None else None

    async def run_read(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        """Await ``fn(connection)`` with an asyncpg connection of the PostgreSQL read
        pool (``ReadPool.run``: sessions start with the integration's
        ``statement_timeout`` and ``default_transaction_read_only = on``; the connection
        is rolled back and reset before it is used again)."""
        assert self._reads is not None
        return await self._reads.run(fn)

    async def quiesce(self) -> None:
        """Wait until the read connections returned so far are reset and back in their
        pool (tests, benchmarks)."""
        if self._reads is not None:
            await self._reads.quiesce()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)

    async def dispose(self) -> None:
        """Close the pools; connections in use close when returned."""
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        if self._reads is not None:
            await self._reads.close()
        if self._sqlite_reads is not None:
            await self._sqlite_reads.close()
        if self.async_engine is not None:
            await self.async_engine.dispose()
        if self.sync_engine is not None:
            await asyncio.to_thread(self.sync_engine.dispose)


def build_engine(
    engine: str,
    connection_config: Mapping[str, Any],
    credentials: Mapping[str, Any],
    *,
    slug: str = "",
    integration_dir: Path | None = None,
    data_dir: Path | None = None,
    allowed_roots: Sequence[Path] | None = None,
    sqlite_base_dir: Path | None = None,
    allow_privileged_roles: bool = False,
) -> EngineHandle:
    """Build (without connecting) the engine for one integration and credential.

    ``connection_config`` is the manifest's ``sqlConnectionConfig`` as a dict;
    ``credentials`` the credential values. For sqlite, ``allowed_roots`` defaults to
    ``[integration_dir, data_dir]`` and relative paths start at ``sqlite_base_dir``
    (default ``<data_dir>/sqlite/<slug>``). ``allow_privileged_roles``: the operator's
    ``BOLLARD_SQL_ALLOW_PRIVILEGED_ROLES``; without it every new PostgreSQL connection
    whose role is privileged fails with SqlError("config_error") (roles.py). Raises
    SqlError("config_error").
    """
    if engine not in ENGINES:
        raise SqlError("config_error", f"unsupported SQL engine {engine!r}")
    options = connection_options(connection_config)
    size = pool_size(connection_config)
    timeout_ms = query_timeout_ms(connection_config)
    connect_ms = positive_int(
        options.get("connectionTimeout"), DEFAULT_CONNECT_TIMEOUT_MS, "options.connectionTimeout"
    )
    connect_s = max(1, math.ceil(connect_ms / 1000))
    password = credentials.get("password")
    secrets = tuple(str(v) for v in (password,) if v)
    mode = tls_mode(options, credentials)
    pool_kw: dict[str, Any] = {
        "pool_size": size,
        "max_overflow": 0,
        "pool_recycle": _POOL_RECYCLE_S,
        "pool_timeout": max(1, math.ceil(timeout_ms / 1000)),
    }

    if engine == "sqlite":
        lite = build_sqlite_engine(
            connection_config,
            credentials,
            slug=slug,
            integration_dir=integration_dir,
            data_dir=data_dir,
            allowed_roots=allowed_roots,
            base_dir=sqlite_base_dir,
            pool_kw=pool_kw,
            timeout_ms=timeout_ms,
        )
        return EngineHandle(
            "sqlite",
            lite.engine,
            None,
            timeout_ms,
            size,
            describe_target("sqlite", credentials, lite.path),
            (),
            sqlite_path=lite.path,
            sqlite_seed=lite.seed,
            sqlite_deadlines=lite.deadlines,
            sqlite_field=lite.field,
            sqlite_busy_s=lite.busy_s,
        )

    url = build_url(engine, credentials)
    target = describe_target(engine, credentials, None)
    if engine == "postgres":
        connect_args: dict[str, Any] = {
            "timeout": connect_s,
            "server_settings": {
                "statement_timeout": str(timeout_ms),
                "application_name": "bollard",
            },
        }
        if (ssl := pg_ssl(mode)) is not None:
            connect_args["ssl"] = ssl
        aeng = create_async_engine(url, connect_args=connect_args, **pool_kw)
        if not allow_privileged_roles:
            event.listen(aeng.sync_engine, "connect", _refuse_privileged_role)
        # The read pool: the same server and settings, plus read-only transactions by
        # default (a second line of defence: pg_reads.py's reads BEGIN READ ONLY).
        read_connect: dict[str, Any] = {
            "host": url.host,
            "port": url.port,
            "user": url.username,
            "password": url.password,
            "database": url.database,
            **connect_args,
            "server_settings": {**connect_args["server_settings"], "default_transaction_read_only": "on"},
        }
        return EngineHandle(
            engine,
            aeng,
            None,
            timeout_ms,
            size,
            target,
            secrets,
            read_connect=read_connect,
            allow_privileged_roles=allow_privileged_roles,
        )
    if engine == "mysql":
        # One statement per call, and a fresh session for every call (mysql.py).
        connect_args = {"connect_timeout": connect_s, "async_creator_fn": connect_single_statement}
        if (ctx := client_ssl_context(mode)) is not None:
            connect_args["ssl"] = ctx
        aeng = create_async_engine(url, connect_args=connect_args, **pool_kw)
        event.listen(aeng.sync_engine, "reset", mysql_session_resetter(timeout_ms))
        if ctx is not None:
            event.listen(aeng.sync_engine, "connect", require_mysql_tls)
        kill_connect: dict[str, Any] = {
            "host": url.host,
            "port": url.port or 3306,
            "user": url.username or "",
            "password": url.password or "",
            "db": url.database,
            "connect_timeout": connect_s,
        }
        if ctx is not None:
            kill_connect["ssl"] = ctx
        return EngineHandle(engine, aeng, None, timeout_ms, size, target, secrets, kill_connect=kill_connect)
    # mssql through pymssql (FreeTDS); its query timeout is whole seconds.
    connect_args = {
        "timeout": max(1, math.ceil(timeout_ms / 1000)),
        "login_timeout": connect_s,
        "appname": "bollard",
    }
    if mode is not None:
        connect_args["encryption"] = (
            "off" if mode in ("disable", "allow") else ("request" if mode == "prefer" else "require")
        )
    seng = create_engine(url, connect_args=connect_args, **pool_kw)
    return EngineHandle(engine, None, seng, timeout_ms, size, target, secrets)


def _refuse_privileged_role(dbapi_connection: Any, _record: Any) -> None:
    """SQLAlchemy ``connect`` event of PostgreSQL engines: ``check_pg_role`` on the new
    connection (its failure fails the connect)."""
    dbapi_connection.run_async(check_pg_role)
