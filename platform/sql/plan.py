"""The checked plan of one SQL call (DESIGN §5; docs/sql-runner.md).

``build_plan`` compiles the manifest query (cached per query, engine and parameter
types), binds the caller's values, and refuses statements by their leading keyword
before anything runs: a read may not control transactions or session modes, a SQL
Server read may not start with a data-changing keyword, SQLite may not reach other
files (ATTACH/DETACH/VACUUM), and a MariaDB/MySQL query may not hold a version-gated
executable comment (its statements depend on the server's version).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bollard.platform.errors import SqlError

from .lexer import version_gated_comment
from .mssql import check_mssql_read
from .placeholders import BoundStatement, CompiledQuery, compile_query

__all__ = ["READ_KEYWORDS", "Plan", "build_plan", "check_statements"]

# Statements that only read; they are streamed (server-side cursor) and capped.
READ_KEYWORDS = frozenset(
    {"SELECT", "WITH", "VALUES", "TABLE", "SHOW", "EXPLAIN", "PRAGMA", "DESCRIBE", "DESC"}
)
# Statements SQL Server reads must not start with (it has no read-only transaction).
_MSSQL_WRITE_KEYWORDS = frozenset(
    {
        "INSERT",
        "UPDATE",
        "DELETE",
        "MERGE",
        "CREATE",
        "ALTER",
        "DROP",
        "TRUNCATE",
        "EXEC",
        "EXECUTE",
        "GRANT",
        "REVOKE",
        "DENY",
        "BULK",
        "SAVE",
    }
)
# Statements a read may not run on any engine: they end the read-only transaction or
# change its mode (`COMMIT; DELETE …`, `SET TRANSACTION READ WRITE`, `PRAGMA
# query_only = 0`), which would let a read write without approval.
_READ_FORBIDDEN = frozenset(
    {
        "BEGIN",
        "START",
        "COMMIT",
        "END",
        "ROLLBACK",
        "ABORT",
        "SAVEPOINT",
        "RELEASE",
        "SET",
        "RESET",
        "DISCARD",
        "PRAGMA",
        "LOCK",
        "UNLOCK",
        "PREPARE",
        "EXECUTE",
        "DEALLOCATE",
        "USE",
        "ATTACH",
        "DETACH",
        "VACUUM",
        "CHECKPOINT",
        # PostgreSQL COPY: `COPY … TO '/file'` / `TO PROGRAM` run in a read-only
        # transaction (hardening issue item 13); a read returns rows, never a copy stream
        "COPY",
        # MySQL/MariaDB: a statement starting with an executable comment, whose text the
        # server may run (`/*!SET @@session.tx_read_only = 0, @x = */ (SELECT 1)`)
        "/*!",
    }
)
# SQLite statements no operation may run: they reach files outside the allowed folders.
_SQLITE_FORBIDDEN = frozenset({"ATTACH", "DETACH", "VACUUM"})


@dataclass(frozen=True)
class Plan:
    """What one call runs: the bound statements (one T-SQL batch on SQL Server), their
    leading keywords, whether it is a read, the row cap (rows), the server timeout (ms)
    and the result's byte budget (bytes of converted values, ``values.RowBudget``)."""

    statements: list[BoundStatement]
    keywords: tuple[str, ...]
    read: bool
    cap: int
    timeout_ms: int
    max_bytes: int = 5 * 1024 * 1024


_SchemaKey = tuple[tuple[str, Any, Any], ...]


@functools.lru_cache(maxsize=512)
def _compile_cached(query: str, engine: str, key: _SchemaKey) -> CompiledQuery:
    schema = {
        "properties": {
            name: {"type": list(t) if isinstance(t, tuple) else t, "format": f} for name, t, f in key
        }
    }
    if engine == "mysql" and version_gated_comment(query, engine=engine):
        # Which statements the server sees depends on its version and flavour, so
        # Bollard's split could not be the server's (DESIGN §5).
        raise SqlError(
            "sql_error",
            "the query uses a version-gated executable comment (/*!NNNNN … */ or /*M! … */), whose "
            "text only some MariaDB/MySQL servers run; write that SQL without the comment",
        )
    return compile_query(query, schema, engine=engine)


def _hashable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value if isinstance(value, str) else None


def _compile(query: str, engine: str, schema: Mapping[str, Any] | None) -> CompiledQuery:
    props = (schema or {}).get("properties") or {}
    # Only type and format matter for binding; descriptions do not split the cache.
    key = tuple(
        sorted(
            (str(k), _hashable(v.get("type")), _hashable(v.get("format")))
            for k, v in props.items()
            if isinstance(v, Mapping)
        )
    )
    return _compile_cached(query, engine, key)


def check_statements(engine: str, keywords: Sequence[str], *, read: bool) -> None:
    """Refuse statements by their leading keyword before anything runs.

    Reads may not control transactions or session modes, nor COPY (all engines), nor, on SQL
    Server, which has no read-only transaction, start with a data-changing keyword.
    SQLite may not ATTACH/DETACH/VACUUM (files outside the allowed folders). A T-SQL
    batch is only checked at its ``;`` boundaries: keep SQL Server credentials to the
    privileges the integration needs.
    """
    if engine == "sqlite":
        bad = [k for k in keywords if k in _SQLITE_FORBIDDEN]
        if bad:
            raise SqlError(
                "sql_error", f"{bad[0]} is not allowed: a sqlite integration uses its own database file only"
            )
    if not read:
        return
    forbidden = _READ_FORBIDDEN | (_MSSQL_WRITE_KEYWORDS if engine == "mssql" else set())
    bad = [k for k in keywords if k in forbidden]
    if bad and bad[0] == "/*!":
        raise SqlError(
            "read_only", "a read operation cannot start a statement with an executable comment (/*! … */)"
        )
    if bad:
        raise SqlError("read_only", f"a read operation cannot run {bad[0]} statements")


def build_plan(
    engine: str,
    query: str,
    schema: Mapping[str, Any] | None,
    params: Mapping[str, Any],
    *,
    read: bool,
    cap: int,
    timeout_ms: int,
    max_bytes: int = 5 * 1024 * 1024,
) -> Plan:
    """Compile ``query`` for ``engine``, bind ``params`` (omitted ones as typed NULLs) and
    check the statements (``check_statements``).

    On SQL Server the query stays one T-SQL batch whose keyword is its last statement's,
    and a read must parse as one SELECT (``mssql.check_mssql_read``).
    Raises SqlError ``config_error`` (no statement), ``invalid_params``, ``read_only`` or
    ``sql_error`` (a refused keyword).
    """
    compiled = _compile(query, engine, schema)
    batch = engine == "mssql"
    statements = compiled.bind(params, split=not batch)
    keywords = (
        (compiled.statement_keywords[-1] if compiled.statement_keywords else "",)
        if batch
        else compiled.statement_keywords
    )
    if not statements or not compiled.statement_keywords:
        raise SqlError("config_error", "the query has no SQL statement")
    check_statements(engine, compiled.statement_keywords, read=read)
    if read and engine == "mssql":
        check_mssql_read(query)
    return Plan(statements, keywords, read, cap, timeout_ms, max_bytes)
