"""SQLite specifics of the SQL runner (DESIGN §5): allowed paths, seeding, the engine.

SQLite is Bollard's demo and test engine. ``database`` is a file path that must resolve
(symlinks followed) inside an allowed root: the integration folder or
``<data_dir>/sqlite/<slug>/``, never anything else in the data directory (the state
database ``bollard.db``, another integration's ``sqlite/<other>/``). Relative paths are
taken from ``<data_dir>/sqlite/<slug>/``. The path is checked again each time a pooled
connection opens, and the connection opens the checked, symlink-free path: a file
swapped for a symlink after the engine was built is refused. When the
credential has no ``database``, the manifest's ``options.database`` names the file
(created on first use), and if that file does not exist yet and ``options.seedFile``
names an SQL script inside the integration folder, the database is created from that
script first. A ``database`` credential must name an existing file.

Each pooled connection has a progress handler that aborts its statement past the
call's deadline (``SqliteDeadline``); reads run with ``PRAGMA query_only`` (execute.py).
"""

from __future__ import annotations

import functools
import math
import os
import sqlite3
import tempfile
import time
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiosqlite
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from bollard.platform.errors import SqlError

from .connection import build_url, connection_options

__all__ = ["SqliteDeadline", "SqliteEngine", "build_sqlite_engine", "resolve_sqlite_path", "seed_sqlite"]

# SQLite's progress handler runs every this many virtual-machine instructions.
_SQLITE_PROGRESS_STEPS = 1000


def _inside(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == r or path.is_relative_to(r) for r in roots)


def resolve_sqlite_path(
    database: str,
    *,
    base_dir: Path,
    allowed_roots: Sequence[Path],
    denied_root: Path | None = None,
    field: str = "database",
) -> Path:
    """The absolute, symlink-resolved path of a sqlite ``database`` value.

    Relative values are taken from ``base_dir``. Raises SqlError("config_error"),
    naming ``field``, when the result lies outside every ``allowed_roots`` entry, or
    inside ``denied_root`` (the data directory: the state database, other integrations'
    files) but in no allowed root below it (DESIGN §5), or when the value is not a file
    path (``:memory:``, URIs).
    """
    raw = str(database).strip()
    if not raw or raw == ":memory:" or raw.startswith("file:") or "\x00" in raw:
        raise SqlError("config_error", f"{field} must be a sqlite file path")
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    resolved = path.resolve()
    roots = [Path(r).resolve() for r in allowed_roots]
    if denied_root is not None and _inside(resolved, [denied := denied_root.resolve()]):
        roots = [r for r in roots if r != denied and _inside(r, [denied])]
    if not _inside(resolved, roots):
        raise SqlError(
            "config_error",
            f"{field} {raw!r} resolves outside the integration folder and the integration's "
            "sqlite folder of the data directory (<data_dir>/sqlite/<slug>/); move the file into one of them",
        )
    return resolved


def _reopen_check(path: Path, field: str) -> None:
    """Refuse to open ``path`` (checked and symlink-free when the engine was built) when
    it, or a folder above it, has become a symlink since."""
    if os.path.realpath(path) != str(path) or os.path.islink(path):
        raise SqlError(
            "config_error",
            f"{field}: the sqlite database {path.name!r} has been replaced by a link since the "
            "integration was loaded; put the database file itself back in its folder",
        )


def seed_sqlite(target: Path, seed: Path) -> None:
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


@dataclass
class SqliteDeadline:
    """Per-connection deadline read by SQLite's progress handler (monotonic seconds)."""

    at: float = math.inf

    def expired(self) -> int:
        # Non-zero aborts the running statement with SQLITE_INTERRUPT.
        return 1 if time.monotonic() > self.at else 0


@dataclass(frozen=True)
class SqliteEngine:
    """What ``build_sqlite_engine`` made: the engine, the database file, the seed script
    to create it from (or None), the progress-handler deadline of each pooled
    connection (keyed by its aiosqlite connection), what errors call the path
    (``field``) and the busy timeout (``busy_s``, seconds; sqlite_reads.py opens its
    read connections with both)."""

    engine: AsyncEngine
    path: Path
    seed: Path | None
    deadlines: weakref.WeakKeyDictionary[Any, SqliteDeadline]
    field: str = "database"
    busy_s: float = 1.0


def build_sqlite_engine(
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
) -> SqliteEngine:
    """The engine (not connected) for a sqlite integration.

    The database file comes from the credential's ``database`` (which must exist) or
    else the manifest's ``options.database`` (created on first use, from
    ``options.seedFile`` when given); both must resolve inside ``allowed_roots``
    (default: ``integration_dir`` and ``<data_dir>/sqlite/<slug>``; nothing else in
    ``data_dir`` is ever allowed), relative paths from ``base_dir`` (default
    ``<data_dir>/sqlite/<slug>``). Each pooled connection checks the path again before
    and after it opens. ``pool_kw``: SQLAlchemy pool arguments;
    ``timeout_ms`` (ms) also bounds waits for a locked database. Raises
    SqlError("config_error").
    """
    options = connection_options(connection_config)
    own_data = data_dir / "sqlite" / (slug or "default") if data_dir is not None else None
    roots = (
        list(allowed_roots)
        if allowed_roots is not None
        else [p for p in (integration_dir, own_data) if p is not None]
    )
    if not roots:
        raise SqlError("config_error", "sqlite needs an integration folder or data directory")
    if base_dir is None:
        if own_data is None:
            raise SqlError("config_error", "sqlite needs a data directory for relative paths")
        base_dir = own_data
    seed: Path | None = None
    from_credential = bool(credentials.get("database"))
    field = "the credential's database" if from_credential else "sqlConnectionConfig.options.database"
    check = functools.partial(
        resolve_sqlite_path, base_dir=base_dir, allowed_roots=roots, denied_root=data_dir, field=field
    )
    if from_credential:
        path = check(str(credentials["database"]))
    elif options.get("database"):
        path = check(str(options["database"]))
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
        _reopen_check(path, field)
        conn = aiosqlite.connect(str(path), timeout=busy_s)
        # Like SQLAlchemy's own aiosqlite connect: a daemon worker thread never blocks
        # interpreter exit.
        thread = getattr(conn, "_thread", None)
        if thread is not None:
            thread.daemon = True
        await conn
        try:
            _reopen_check(path, field)  # swapped while opening: the window is this short
        except SqlError:
            await conn.close()
            raise
        deadline = SqliteDeadline()
        await conn.set_progress_handler(deadline.expired, _SQLITE_PROGRESS_STEPS)
        deadlines[conn] = deadline
        return conn

    url = build_url("sqlite", credentials, sqlite_path=path)
    return SqliteEngine(
        create_async_engine(url, async_creator=creator, **pool_kw), path, seed, deadlines, field, busy_s
    )
