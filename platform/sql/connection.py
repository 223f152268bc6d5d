"""Connection settings of a SQL integration (DESIGN §5, §7): what ``sqlConnectionConfig``
and the credential values say about pools, timeouts, TLS and the server to reach.

Credential values: ``server``, ``port``, ``database``, ``username``, ``password`` and TLS
settings ``ssl`` (bool, or a libpq mode: ``disable``/``prefer``/``require``/``verify-ca``/
``verify-full``), ``sslMode`` (the same modes), ``encrypt`` (bool) and
``trustServerCertificate`` (bool: encrypt without verifying the certificate). TLS
settings may also sit in the manifest's ``options``; credential values win.
"""

from __future__ import annotations

import ssl as ssl_module
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import URL

from bollard.platform.errors import SqlError

__all__ = [
    "DEFAULT_CONNECT_TIMEOUT_MS",
    "DEFAULT_POOL_SIZE",
    "DEFAULT_QUERY_TIMEOUT_MS",
    "ENGINES",
    "build_url",
    "client_ssl_context",
    "connection_options",
    "pg_ssl",
    "pool_size",
    "positive_int",
    "query_timeout_ms",
    "describe_target",
    "tls_mode",
]

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


def _security(config: Mapping[str, Any]) -> Mapping[str, Any]:
    sec = config.get("security")
    return sec if isinstance(sec, Mapping) else {}


def connection_options(config: Mapping[str, Any]) -> Mapping[str, Any]:
    """``sqlConnectionConfig.options`` ({} when absent or not an object)."""
    opts = config.get("options")
    return opts if isinstance(opts, Mapping) else {}


def positive_int(value: Any, default: int, what: str) -> int:
    """``value`` as a positive int, ``default`` when None; raises SqlError("config_error")
    naming the setting ``what``."""
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
    return positive_int(
        _security(config).get("maxConnectionPoolSize"),
        DEFAULT_POOL_SIZE,
        "security.maxConnectionPoolSize",
    )


def query_timeout_ms(config: Mapping[str, Any]) -> int:
    """``security.queryTimeoutMs`` (ms), default 30000."""
    return positive_int(
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


def pg_ssl(mode: str | None) -> Any:
    """asyncpg's ``ssl`` argument for a ``tls_mode`` (None: the driver default)."""
    if mode is None:
        return None
    if mode == "disable":
        return False
    return mode  # asyncpg takes libpq's mode names


def client_ssl_context(mode: str | None) -> ssl_module.SSLContext | None:
    """A client ``SSLContext`` for a ``tls_mode`` that requires TLS (``require``: no
    certificate check; ``verify-ca``: no host-name check), else None."""
    if mode is None or mode in ("disable", "allow", "prefer"):
        return None
    ctx = ssl_module.create_default_context()
    if mode == "require":
        ctx.check_hostname = False
        ctx.verify_mode = ssl_module.CERT_NONE
    elif mode == "verify-ca":
        ctx.check_hostname = False
    return ctx


def describe_target(engine: str, credentials: Mapping[str, Any], sqlite_path: Path | None) -> str:
    """What messages call the server: ``postgres at host:5432 (database d)``, never a
    user name or password."""
    if engine == "sqlite":
        return f"sqlite database {sqlite_path.name if sqlite_path else '?'}"
    server = credentials.get("server") or credentials.get("host") or "?"
    port = credentials.get("port") or _DEFAULT_PORTS.get(engine)
    db = credentials.get("database")
    return f"{engine} at {server}:{port}" + (f" (database {db})" if db else "")
