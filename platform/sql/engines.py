"""SQLAlchemy engines and pools for SQL integrations (DESIGN §5).

One engine and pool per (integration slug, credential id), built from the manifest's
``sqlConnectionConfig`` and the credential values, rebuilt when either changes and
disposed at shutdown (``EngineCache``).

Engines: ``postgres`` → ``postgresql+asyncpg``; ``mysql`` → ``mysql+aiomysql`` (MySQL
and MariaDB); ``sqlite`` → ``sqlite+aiosqlite``; ``mssql`` → ``mssql+pymssql``, a
synchronous driver run in worker threads behind the same ``EngineHandle.run``.

PostgreSQL reads use a second pool of the same (integration, credential), an
``asyncpg.Pool`` opened on the first read (``EngineHandle.run_read``; runner.py explains
the protocol): sessions start with the integration's ``statement_timeout`` and
``default_transaction_read_only = on``, each connection is rolled back and reset
(``READ_RESET``) before it is used again, and idle ones close after 5 minutes. Each pool
holds at most ``maxConnectionPoolSize`` connections, so an integration that both reads
and writes may hold up to twice that many; a read-only one never opens the other pool.

Credential values: ``server``, ``port``, ``database``, ``username``, ``password`` and TLS
settings ``ssl`` (bool, or a libpq mode: ``disable``/``prefer``/``require``/``verify-ca``/
``verify-full``), ``sslMode`` (the same modes), ``encrypt`` (bool) and
``trustServerCertificate`` (bool: encrypt without verifying the certificate). TLS
settings may also sit in the manifest's ``options``; credential values win.

SQLite (Bollard's demo and test engine): ``database`` is a file path that must resolve
(symlinks followed) inside an allowed root: the integration folder or the data
directory. Relative paths are taken from ``<data_dir>/sqlite/<slug>/``. When the
credential has no ``database``, the manifest's ``options.database`` names the file
(created on first use), and if that file does not exist yet and ``options.seedFile``
names an SQL script inside the integration folder, the database is created from that
script first. A ``database`` credential must name an existing file.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import os
import sqlite3
import ssl as ssl_module
import tempfile
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
from bollard.platform.errors import SqlError
from sqlalchemy import URL, Connection, Engine, create_engine, event
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from .errors import to_sql_error

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT_MS",
    "DEFAULT_POOL_SIZE",
    "DEFAULT_QUERY_TIMEOUT_MS",
    "ENGINES",
    "READ_RESET",
    "EngineCache",
    "EngineHandle",
    "SqliteDeadline",
    "build_engine",
    "build_url",
    "resolve_sqlite_path",
]

T = TypeVar("T")

ENGINES = ("postgres", "mysql", "mssql", "sqlite")
DEFAULT_POOL_SIZE = 5
DEFAULT_QUERY_TIMEOUT_MS = 30_000
DEFAULT_CONNECT_TIMEOUT_MS = 10_000
_DEFAULT_PORTS = {"postgres": 5432, "mysql": 3306, "mssql": 1433}
_DRIVERS = {
    "postgres": "postgresql+asyncpg",
    "mysql": "mysql+aiomysql",
    "mssql": "mssql+pymssql",
    "sqlite": "sqlite+aiosqlite",
}
# SQLite's progress handler runs every this many virtual-machine instructions.
_SQLITE_PROGRESS_STEPS = 1000
# Connections are replaced after this long (seconds), so server-side idle limits and
# failovers do not hand us dead sockets.
_POOL_RECYCLE_S = 1800
# PostgreSQL read-pool connections idle this long (seconds) are closed.
_READ_POOL_IDLE_S = 300.0


def _security(config: Mapping[str, Any]) -> Mapping[str, Any]:
    sec = config.get("security")
    return sec if isinstance(sec, Mapping) else {}


def _options(config: Mapping[str, Any]) -> Mapping[str, Any]:
    opts = config.get("options")
    return opts if isinstance(opts, Mapping) else {}


def _positive_int(value: Any, default: int, what: str) -> int:
    if value is None:
        return default
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise SqlError("config_error", f"{what} must be a positive integer") from None
    if n <= 0:
        raise SqlError("config_error", f"{what} must be a positive integer")
    return n


def pool_size(config: Mapping[str, Any]) -> int:
    """``security.maxConnectionPoolSize`` (connections), default 5."""
    return _positive_int(
        _security(config).get("maxConnectionPoolSize"),
        DEFAULT_POOL_SIZE,
        "security.maxConnectionPoolSize",
    )


def query_timeout_ms(config: Mapping[str, Any]) -> int:
    """``security.queryTimeoutMs`` (ms), default 30000."""
    return _positive_int(
        _security(config).get("queryTimeoutMs"),
        DEFAULT_QUERY_TIMEOUT_MS,
        "security.queryTimeoutMs",
    )


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on", "require", "required")
    return bool(value)


def tls_mode(options: Mapping[str, Any], credentials: Mapping[str, Any]) -> str | None:
    """The TLS mode asked for: None (driver default), ``disable``, ``require`` (encrypt,
    no certificate check) or ``verify-full``/``verify-ca``/``prefer``."""
    merged = {**options, **credentials}
    trust = _truthy(merged.get("trustServerCertificate"))
    for key in ("sslMode", "ssl", "encrypt"):
        if key not in merged or merged[key] is None or merged[key] == "":
            continue
        v = merged[key]
        if isinstance(v, str) and v.strip().lower() in (
            "disable",
            "allow",
            "prefer",
            "require",
            "verify-ca",
            "verify-full",
        ):
            mode = v.strip().lower()
            return "require" if trust and mode.startswith("verify") else mode
        if _truthy(v):
            return "require" if trust else "verify-full"
        return "disable"
    return None


def _port(credentials: Mapping[str, Any], engine: str) -> int | None:
    raw = credentials.get("port")
    if raw in (None, ""):
        return _DEFAULT_PORTS.get(engine)
    try:
        port = int(raw)
    except (TypeError, ValueError):
        raise SqlError("config_error", "port must be a number between 1 and 65535") from None
    if not 0 < port < 65536:
        raise SqlError("config_error", "port must be a number between 1 and 65535")
    return port


def build_url(engine: str, credentials: Mapping[str, Any], *, sqlite_path: Path | None = None) -> URL:
    """The SQLAlchemy URL for ``engine`` from credential values (``URL.create``, so no
    value is ever spliced into a string). Raises SqlError("config_error")."""
    if engine not in _DRIVERS:
        raise SqlError("config_error", f"unsupported SQL engine {engine!r}")
    if engine == "sqlite":
        if sqlite_path is None:
            raise SqlError("config_error", "sqlite needs a database path")
        return URL.create(_DRIVERS[engine], database=str(sqlite_path))
    server = credentials.get("server") or credentials.get("host")
    if not server:
        raise SqlError("config_error", "the credential has no server")
    query = {"charset": "utf8mb4"} if engine == "mysql" else {}
    return URL.create(
        _DRIVERS[engine],
        username=credentials.get("username") or None,
        password=credentials.get("password") or None,
        host=str(server),
        port=_port(credentials, engine),
        database=credentials.get("database") or None,
        query=query,
    )


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == r or path.is_relative_to(r) for r in roots)


def resolve_sqlite_path(database: str, *, base_dir: Path, allowed_roots: Sequence[Path]) -> Path:
    """The absolute, symlink-resolved path of a sqlite ``database`` value.

    Relative values are taken from ``base_dir``. Raises SqlError("config_error") when
    the result lies outside every ``allowed_roots`` entry (DESIGN §5), or when the value
    is not a file path (``:memory:``, URIs).
    """
    raw = str(database).strip()
    if not raw or raw == ":memory:" or raw.startswith("file:") or "\x00" in raw:
        raise SqlError("config_error", "the sqlite database must be a file path")
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    resolved = path.resolve()
    roots = [Path(r).resolve() for r in allowed_roots]
    if not _inside(resolved, roots):
        raise SqlError(
            "config_error",
            f"the sqlite database {raw!r} resolves outside the integration folder and the "
            "data directory; move it into one of them",
        )
    return resolved


def _seed_sqlite(target: Path, seed: Path) -> None:
    """Create ``target`` from the SQL script ``seed`` atomically (temp file + rename)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    script = seed.read_text(encoding="utf-8")
    fd, tmp = tempfile.mkstemp(prefix=".seed-", suffix=".db", dir=target.parent)
    os.close(fd)
    try:
        conn = sqlite3.connect(tmp)
        try:
            conn.executescript(script)
            conn.commit()
        finally:
            conn.close()
        if not target.exists():  # another process may have won the race
            os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _is_database_error(exc: BaseException) -> bool:
    """An error the server reported for a statement (the connection is still sound)."""
    import asyncpg

    return isinstance(exc, asyncpg.PostgresError) and not isinstance(
        exc, asyncpg.exceptions.PostgresConnectionError
    )


@dataclass
class SqliteDeadline:
    """Per-connection deadline read by SQLite's progress handler (monotonic seconds)."""

    at: float = math.inf

    def expired(self) -> int:
        # Non-zero aborts the running statement with SQLITE_INTERRUPT.
        return 1 if time.monotonic() > self.at else 0


@dataclass
class EngineHandle:
    """A live engine for one (integration, credential), behind one async interface.

    ``engine``: the Bollard engine name. ``default_timeout_ms``: the server-side
    statement timeout set on new connections. ``secrets``: strings redacted from every
    message. Use ``run(fn)`` to call ``fn(connection)`` with a synchronous SQLAlchemy
    ``Connection`` (through ``AsyncConnection.run_sync`` for async drivers, in a worker
    thread for pymssql).
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
    _sqlite_deadlines: weakref.WeakKeyDictionary[Any, SqliteDeadline] = field(
        default_factory=weakref.WeakKeyDictionary, repr=False
    )
    compiled_cache: weakref.WeakKeyDictionary[Any, tuple[str, list[str]]] = field(
        default_factory=weakref.WeakKeyDictionary, repr=False
    )
    _prepared: bool = field(default=False, repr=False)
    _prepare_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    # PostgreSQL: asyncpg.connect arguments of the read pool (see ``run_read``).
    read_connect: dict[str, Any] | None = field(default=None, repr=False)
    _read_pool: Any = field(default=None, repr=False)
    _read_pool_lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False)
    _releases: set[asyncio.Task[None]] = field(default_factory=set, repr=False)
    _disposed: bool = field(default=False, repr=False)

    @property
    def dialect_name(self) -> str:
        eng = self.async_engine.sync_engine if self.async_engine else self.sync_engine
        assert eng is not None
        return eng.dialect.name

    def sqlite_deadline(self, connection: Connection) -> SqliteDeadline | None:
        """The progress-handler deadline of a pooled sqlite connection, if any."""
        driver = connection.connection.driver_connection
        return self._sqlite_deadlines.get(driver)

    async def _prepare(self) -> None:
        if self._prepared:
            return
        async with self._prepare_lock:
            if self._prepared:
                return
            path, seed = self.sqlite_path, self.sqlite_seed
            if path is not None and seed is not None and not path.exists():
                try:
                    await asyncio.to_thread(_seed_sqlite, path, seed)
                except (OSError, sqlite3.Error) as exc:
                    raise SqlError(
                        "config_error", f"could not create the database from {seed.name}: {exc}"
                    ) from None
            self._prepared = True

    def _connect_error(self, exc: BaseException) -> SqlError:
        err = to_sql_error(exc, self.secrets, prefix=f"could not connect to {self.target}: ")
        code = err.code if err.code in ("timeout", "config_error") else "connection_failed"
        return SqlError(code, err.message)

    async def run(self, fn: Callable[[Connection], T]) -> T:
        """Check a connection out of the pool and call ``fn`` with it.

        Failures to connect become SqlError("connection_failed"); exceptions from ``fn``
        propagate unchanged (the runner classifies them).
        """
        await self._prepare()
        if self.async_engine is not None:
            aconn = self.async_engine.connect()
            try:
                await aconn.start()
            except Exception as exc:
                raise self._connect_error(exc) from None
            try:
                return await aconn.run_sync(fn)
            finally:
                await aconn.close()
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

    @property
    def read_pool(self) -> Any:
        """The PostgreSQL read pool (an ``asyncpg.Pool``), or None until the first read."""
        return self._read_pool

    async def _open_read_pool(self) -> Any:
        import asyncpg

        async with self._read_pool_lock:
            if self._read_pool is None:
                if self._disposed:
                    raise SqlError("connection_failed", f"the engine for {self.target} was closed")
                assert self.read_connect is not None
                pool = asyncpg.create_pool(
                    min_size=0,
                    max_size=self.pool_size,
                    reset=_no_reset,
                    max_inactive_connection_lifetime=_READ_POOL_IDLE_S,
                    **self.read_connect,
                )
                await pool  # min_size 0: opens no connection yet
                self._read_pool = pool
            return self._read_pool

    async def run_read(self, fn: Callable[[Any], Awaitable[T]]) -> T:
        """Await ``fn(connection)`` with an asyncpg connection of the PostgreSQL read
        pool, whose sessions start with the integration's ``statement_timeout`` and
        ``default_transaction_read_only = on``.

        ``fn`` may leave a transaction open (runner.py's reads do). Afterwards, in the
        background once the result has been returned, ``READ_RESET`` rolls it back and
        resets the session to its state at connect; only then does the pool hand the
        connection out again. The connection is discarded instead when ``fn`` raised
        anything but a database error (cancelled, past its deadline, broken protocol),
        when the reset fails, or when the server reported ``default_transaction_read_only``
        as anything but ``on``.
        """
        pool = self._read_pool or await self._open_read_pool()
        try:
            con = await pool.acquire()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise self._connect_error(exc) from None
        sound = False
        try:
            result = await fn(con)
            sound = True
            return result
        except BaseException as exc:
            sound = _is_database_error(exc)
            raise
        finally:
            if not sound or reported_read_only(con) is False:
                con.terminate()  # never pooled again; release only frees its slot
                await asyncio.shield(pool.release(con))
            else:
                task = asyncio.get_running_loop().create_task(_reset_and_release(pool, con))
                self._releases.add(task)
                task.add_done_callback(self._releases.discard)

    async def quiesce(self) -> None:
        """Wait until the read connections returned so far are reset and back in their
        pool (tests, benchmarks)."""
        if self._releases:
            await asyncio.gather(*self._releases, return_exceptions=True)

    async def dispose(self) -> None:
        """Close the pools; connections in use close when returned."""
        self._disposed = True
        await self.quiesce()
        async with self._read_pool_lock:
            pool, self._read_pool = self._read_pool, None
        if pool is not None:
            try:
                await asyncio.wait_for(pool.close(), timeout=10)
            except Exception:  # noqa: BLE001 - a dead server must not stop shutdown
                pool.terminate()
        if self.async_engine is not None:
            await self.async_engine.dispose()
        if self.sync_engine is not None:
            await asyncio.to_thread(self.sync_engine.dispose)


# Sent as one simple query (one round trip) before a read connection is pooled again:
# the read's transaction rolled back, and what could outlive a transaction (advisory
# locks, WITH HOLD cursors, LISTEN, role, session settings) back to the state at
# connect (RESET ALL restores the startup packet's server_settings; it leaves role and
# session_authorization alone, which SET SESSION AUTHORIZATION DEFAULT resets, as any
# user may).
READ_RESET = (
    "ROLLBACK; SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; "
    "SET SESSION AUTHORIZATION DEFAULT; RESET ALL;"
)


async def _no_reset(con: Any) -> None:
    """The read pool's own reset (asyncpg ``Pool(reset=...)``): ``READ_RESET`` has run."""


async def _reset_and_release(pool: Any, con: Any) -> None:
    try:
        await con.execute(READ_RESET)
    except asyncio.CancelledError:
        con.terminate()  # never pooled again
        raise
    except Exception:  # noqa: BLE001 - a connection that cannot be reset is dropped
        con.terminate()
    finally:
        with contextlib.suppress(Exception):
            await pool.release(con)


def reported_read_only(con: Any) -> bool | None:
    """``default_transaction_read_only`` as the server last reported it on ``con``
    (PostgreSQL 14+ reports every change, before the end of the call that made it), or
    None when the server does not report it."""
    try:
        value = con.get_settings().default_transaction_read_only
    except AttributeError:
        return None
    return value == "on"


def _pg_ssl(mode: str | None) -> Any:
    if mode is None:
        return None
    if mode == "disable":
        return False
    return mode  # asyncpg takes libpq's mode names


def _client_ssl_context(mode: str | None) -> ssl_module.SSLContext | None:
    if mode is None or mode in ("disable", "allow", "prefer"):
        return None
    ctx = ssl_module.create_default_context()
    if mode == "require":
        ctx.check_hostname = False
        ctx.verify_mode = ssl_module.CERT_NONE
    elif mode == "verify-ca":
        ctx.check_hostname = False
    return ctx


def _require_mysql_tls(dbapi_connection: Any, _record: Any) -> None:
    """Refuse a MariaDB/MySQL connection that came up without TLS although the
    credential asks for it (aiomysql silently continues in clear text when the server
    offers no TLS)."""
    cur = dbapi_connection.cursor()
    try:
        cur.execute("SHOW SESSION STATUS LIKE 'Ssl_cipher'")
        row = cur.fetchone()
    finally:
        cur.close()
    if not row or not row[1]:
        raise SqlError(
            "connection_failed",
            "the server did not encrypt the connection (no TLS), which the credential requires (ssl/encrypt)",
        )


def _target(engine: str, credentials: Mapping[str, Any], sqlite_path: Path | None) -> str:
    if engine == "sqlite":
        return f"sqlite database {sqlite_path.name if sqlite_path else '?'}"
    server = credentials.get("server") or credentials.get("host") or "?"
    port = credentials.get("port") or _DEFAULT_PORTS.get(engine)
    db = credentials.get("database")
    return f"{engine} at {server}:{port}" + (f" (database {db})" if db else "")


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
) -> EngineHandle:
    """Build (without connecting) the engine for one integration and credential.

    ``connection_config`` is the manifest's ``sqlConnectionConfig`` as a dict;
    ``credentials`` the credential values. For sqlite, ``allowed_roots`` defaults to
    ``[integration_dir, data_dir]`` and relative paths start at ``sqlite_base_dir``
    (default ``<data_dir>/sqlite/<slug>``). Raises SqlError("config_error").
    """
    if engine not in ENGINES:
        raise SqlError("config_error", f"unsupported SQL engine {engine!r}")
    options = _options(connection_config)
    size = pool_size(connection_config)
    timeout_ms = query_timeout_ms(connection_config)
    connect_ms = _positive_int(
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
        return _build_sqlite(
            connection_config,
            credentials,
            slug=slug,
            integration_dir=integration_dir,
            data_dir=data_dir,
            allowed_roots=allowed_roots,
            base_dir=sqlite_base_dir,
            pool_kw=pool_kw,
            timeout_ms=timeout_ms,
            size=size,
        )

    url = build_url(engine, credentials)
    target = _target(engine, credentials, None)
    if engine == "postgres":
        connect_args: dict[str, Any] = {
            "timeout": connect_s,
            "server_settings": {
                "statement_timeout": str(timeout_ms),
                "application_name": "bollard",
            },
        }
        if (pg_ssl := _pg_ssl(mode)) is not None:
            connect_args["ssl"] = pg_ssl
        aeng = create_async_engine(url, connect_args=connect_args, **pool_kw)
        # The read pool: the same server and settings, plus read-only transactions by
        # default (a second line of defence: runner.py's reads BEGIN READ ONLY).
        read_connect: dict[str, Any] = {
            "host": url.host,
            "port": url.port,
            "user": url.username,
            "password": url.password,
            "database": url.database,
            **connect_args,
            "server_settings": {**connect_args["server_settings"], "default_transaction_read_only": "on"},
        }
        return EngineHandle(engine, aeng, None, timeout_ms, size, target, secrets, read_connect=read_connect)
    if engine == "mysql":
        connect_args = {"connect_timeout": connect_s}
        if (ctx := _client_ssl_context(mode)) is not None:
            connect_args["ssl"] = ctx
        aeng = create_async_engine(url, connect_args=connect_args, **pool_kw)
        if ctx is not None:
            event.listen(aeng.sync_engine, "connect", _require_mysql_tls)
        return EngineHandle(engine, aeng, None, timeout_ms, size, target, secrets)
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


def _build_sqlite(
    connection_config: Mapping[str, Any],
    credentials: Mapping[str, Any],
    *,
    slug: str,
    integration_dir: Path | None,
    data_dir: Path | None,
    allowed_roots: Sequence[Path] | None,
    base_dir: Path | None,
    pool_kw: dict[str, Any],
    timeout_ms: int,
    size: int,
) -> EngineHandle:
    options = _options(connection_config)
    roots = (
        list(allowed_roots)
        if allowed_roots is not None
        else [p for p in (integration_dir, data_dir) if p is not None]
    )
    if not roots:
        raise SqlError("config_error", "sqlite needs an integration folder or data directory")
    if base_dir is None:
        if data_dir is None:
            raise SqlError("config_error", "sqlite needs a data directory for relative paths")
        base_dir = data_dir / "sqlite" / (slug or "default")
    seed: Path | None = None
    from_credential = bool(credentials.get("database"))
    if from_credential:
        path = resolve_sqlite_path(str(credentials["database"]), base_dir=base_dir, allowed_roots=roots)
    elif options.get("database"):
        path = resolve_sqlite_path(str(options["database"]), base_dir=base_dir, allowed_roots=roots)
        if options.get("seedFile"):
            if integration_dir is None:
                raise SqlError("config_error", "options.seedFile needs the integration folder")
            seed = resolve_sqlite_path(
                str(options["seedFile"]),
                base_dir=integration_dir,
                allowed_roots=[integration_dir],
            )
            if not seed.is_file():
                raise SqlError("config_error", f"options.seedFile {seed.name!r} does not exist")
    else:
        raise SqlError("config_error", "sqlite needs a database path (credential or options.database)")
    if from_credential and not path.is_file():
        raise SqlError("config_error", f"the sqlite database {path.name!r} does not exist")
    path.parent.mkdir(parents=True, exist_ok=True)

    deadlines: weakref.WeakKeyDictionary[Any, SqliteDeadline] = weakref.WeakKeyDictionary()
    busy_s = max(1.0, timeout_ms / 1000)

    async def creator() -> aiosqlite.Connection:
        conn = aiosqlite.connect(str(path), timeout=busy_s)
        # Like SQLAlchemy's own aiosqlite connect: a daemon worker thread never blocks
        # interpreter exit.
        thread = getattr(conn, "_thread", None)
        if thread is not None:
            thread.daemon = True
        await conn
        deadline = SqliteDeadline()
        await conn.set_progress_handler(deadline.expired, _SQLITE_PROGRESS_STEPS)
        deadlines[conn] = deadline
        return conn

    url = build_url("sqlite", credentials, sqlite_path=path)
    aeng = create_async_engine(url, async_creator=creator, **pool_kw)
    handle = EngineHandle(
        "sqlite",
        aeng,
        None,
        timeout_ms,
        size,
        _target("sqlite", credentials, path),
        (),
        sqlite_path=path,
        sqlite_seed=seed,
    )
    handle._sqlite_deadlines = deadlines
    return handle


def fingerprint(
    engine: str, connection_config: Mapping[str, Any], credentials: Mapping[str, Any], *extra: Any
) -> str:
    """A digest of everything an engine is built from (never logged or returned)."""
    blob = json.dumps(
        [engine, connection_config, credentials, [str(e) for e in extra]], sort_keys=True, default=str
    )
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class _Entry:
    fingerprint: str
    handle: EngineHandle


class EngineCache:
    """Engines keyed by (integration slug, credential id) (DESIGN §5).

    ``get`` returns the cached engine while the connection config and credential
    values are unchanged; otherwise it builds a new one and disposes the old (calls in
    flight on the old engine finish; its connections close when returned).
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._lock = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(
        self,
        slug: str,
        credential_id: str,
        *,
        engine: str,
        connection_config: Mapping[str, Any],
        credentials: Mapping[str, Any],
        integration_dir: Path | None = None,
        data_dir: Path | None = None,
        allowed_roots: Sequence[Path] | None = None,
    ) -> EngineHandle:
        """The engine for ``(slug, credential_id)``, built or rebuilt as needed.

        Raises SqlError("config_error") when the settings cannot make an engine.
        """
        fp = fingerprint(
            engine, connection_config, credentials, integration_dir, data_dir, list(allowed_roots or [])
        )
        key = (slug, credential_id)
        entry = self._entries.get(key)
        if entry is not None and entry.fingerprint == fp:
            return entry.handle
        async with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.fingerprint == fp:
                return entry.handle
            handle = build_engine(
                engine,
                connection_config,
                credentials,
                slug=slug,
                integration_dir=integration_dir,
                data_dir=data_dir,
                allowed_roots=allowed_roots,
            )
            self._entries[key] = _Entry(fp, handle)
        if entry is not None:
            await entry.handle.dispose()
        return handle

    async def invalidate(self, slug: str, credential_id: str | None = None) -> None:
        """Dispose the engines of ``slug`` (one credential, or all when None)."""
        async with self._lock:
            keys = [
                k for k in self._entries if k[0] == slug and (credential_id is None or k[1] == credential_id)
            ]
            entries = [self._entries.pop(k) for k in keys]
        await _dispose(entries)

    async def dispose_all(self) -> None:
        """Dispose every engine (shutdown)."""
        async with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        await _dispose(entries)


async def _dispose(entries: Sequence[_Entry]) -> None:
    results = await asyncio.gather(*(e.handle.dispose() for e in entries), return_exceptions=True)
    del results  # disposal failures (a dead server) do not stop shutdown
