"""SQL Server through pymssql (DESIGN §5).

Rendering is checked offline through SQLAlchemy's mssql dialect; the real-server tests
run only when ``BOLLARD_TEST_MSSQL_URL`` is set (e.g.
``mssql://sa:Passw0rd!@127.0.0.1:1433/master``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.dialects import mssql

from bollard.platform.sql import SqlError, compile_query
from bollard.platform.sql.engines import EngineHandle, build_engine
from bollard.platform.sql.plan import build_plan
from bollard.platform.sql.runner import run_sql
from tests.support.databases import MSSQL_URL, credentials_from_url, unavailable

PROTEL = Path("/work/shared/corpus/tale-manifests/protel/config.json")
PYMSSQL = mssql.pymssql.dialect(paramstyle="pyformat")


def test_protel_update_batch_renders_as_one_tsql_batch() -> None:
    manifest = json.loads(PROTEL.read_text())
    op = next(o for o in manifest["operations"] if o["name"] == "update_guest")
    cq = compile_query(op["query"], op["parametersSchema"], engine="mssql")
    [stmt] = cq.bind({"guestId": 42, "email": "a@b.c"}, split=False)
    sql = str(stmt.clause.compile(dialect=PYMSSQL))
    assert "WHERE kdnr = %(guestId)s AND typ = 2; SELECT %(guestId)s AS guest_id" in sql
    assert "@@ROWCOUNT > 0" in sql
    assert "@guestId" not in sql
    assert stmt.values["guestId"] == 42 and stmt.values["lastName"] is None
    assert cq.statement_keywords == ("UPDATE", "SELECT")


def test_mssql_brackets_and_nested_comments() -> None:
    sql = "SELECT [order @x], 'it''s @y' /* a /* @z */ b */ FROM t WHERE id = @id"
    cq = compile_query(sql, {"properties": {"id": {"type": "integer"}}}, engine="mssql")
    assert cq.names == ("id",)
    rendered = str(cq.clause.compile(dialect=PYMSSQL))
    assert rendered.endswith("WHERE id = %(id)s")


async def test_reads_refuse_tsql_writes_before_connecting() -> None:
    # No server needed: the statement check happens first.
    h = build_engine("mssql", {}, {"server": "127.0.0.1", "port": 1})
    try:
        for query in ("DELETE FROM t", "SELECT 1; UPDATE t SET a = 1", "EXEC sp_who"):
            with pytest.raises(SqlError) as err:
                await run_sql(
                    h,
                    query=query,
                    operation_type="read",
                    schema={},
                    params={},
                    security={},
                    read_only_connection=False,
                )
            assert err.value.code == "read_only"
    finally:
        await h.dispose()


def _guard(query: str, *, read: bool = True) -> Any:
    return build_plan(
        "mssql",
        query,
        {"properties": {"id": {"type": "integer"}}},
        {"id": 1},
        read=read,
        cap=10,
        timeout_ms=1000,
    )


@pytest.mark.parametrize(
    "query",
    [
        # T-SQL needs no `;` between statements: these are two statements to the server
        "SELECT 1 COMMIT DELETE FROM t",
        "SELECT 1 AS a BEGIN TRAN DELETE FROM t",
        "SELECT 1 SHUTDOWN",
        "SELECT name FROM t WHERE id = @id DROP TABLE t",
        "EXEC('DELETE FROM t')",
        "EXECUTE sp_executesql N'DELETE FROM t'",
        "SELECT a INTO x FROM t",
        "SELECT a INTO #x FROM t",
        "WITH c AS (SELECT 1 AS a) SELECT a INTO x FROM c",
        "SELECT 1; SELECT 2",
        "DECLARE @x int SELECT 1",
        "SELECT * FROM OPENQUERY(remote, 'DELETE FROM t')",
        "SELECT * FROM OPENROWSET('SQLNCLI', 'Server=x;', 'DELETE FROM t')",
        "SELECT 1 WAITFOR DELAY '00:00:05'",
    ],
)
def test_mssql_read_guard_refuses_what_is_not_one_select(query: str) -> None:
    with pytest.raises(SqlError) as err:
        _guard(query)
    assert err.value.code == "read_only", query


@pytest.mark.parametrize(
    "query",
    [
        "SELECT TOP 10 [order id], name FROM dbo.t WHERE id = @id ORDER BY name",
        "WITH c AS (SELECT 1 AS a) SELECT a FROM c",
        "SELECT 1 AS a UNION ALL SELECT 2",
        "SELECT (SELECT COUNT(*) FROM t) AS n",
        "SELECT 1 AS one;",
    ],
)
def test_mssql_read_guard_accepts_one_select(query: str) -> None:
    plan = _guard(query)
    [stmt] = plan.statements
    assert "%(id)s" in str(stmt.clause.compile(dialect=PYMSSQL)) or "@id" not in query


def test_protel_reads_pass_the_guard() -> None:
    manifest = json.loads(PROTEL.read_text())
    reads = [o for o in manifest["operations"] if o.get("operationType", "read") == "read"]
    assert reads
    for op in reads:
        params = {k: None for k in (op.get("parametersSchema") or {}).get("properties", {})}
        build_plan(
            "mssql", op["query"], op.get("parametersSchema"), params, read=True, cap=10, timeout_ms=1000
        )


# --- real server ------------------------------------------------------------------------


@pytest.fixture
async def server() -> AsyncIterator[tuple[EngineHandle, str]]:
    if not MSSQL_URL:
        pytest.skip("BOLLARD_TEST_MSSQL_URL is not set")
    h = build_engine("mssql", {"options": {"connectionTimeout": 5000}}, credentials_from_url(MSSQL_URL))
    table = f"bt_{uuid.uuid4().hex[:10]}"
    try:
        await run_sql(
            h,
            query=f"CREATE TABLE {table} (id int PRIMARY KEY, name nvarchar(50))",
            operation_type="write",
            schema={},
            params={},
            security={},
            read_only_connection=False,
        )
    except SqlError as exc:
        await h.dispose()
        unavailable(f"mssql test server unusable: {exc.message}")
    try:
        yield h, table
    finally:
        await run_sql(
            h,
            query=f"DROP TABLE {table}",
            operation_type="write",
            schema={},
            params={},
            security={},
            read_only_connection=False,
        )
        await h.dispose()


async def _call(
    h: EngineHandle, op: str, query: str, params: dict[str, Any] | None = None, **security: Any
) -> Any:
    schema = {"properties": {"id": {"type": "number"}, "name": {"type": "string"}}}
    return await run_sql(
        h,
        query=query,
        operation_type=op,
        schema=schema,
        params=params or {},
        security=security,
        read_only_connection=False,
    )


async def test_mssql_protel_style_write_batch(server: tuple[EngineHandle, str]) -> None:
    h, t = server
    await _call(h, "write", f"INSERT INTO {t} VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    r = await _call(
        h,
        "write",
        f"UPDATE {t} SET name = @name WHERE id = @id; "
        "SELECT @id AS id, 'updated' AS status WHERE @@ROWCOUNT > 0;",
        {"id": 2, "name": "'; DROP TABLE x; --"},
    )
    assert r.rows == [{"id": 2, "status": "updated"}]
    r = await _call(h, "read", f"SELECT name FROM {t} WHERE id = @id", {"id": 2})
    assert r.rows == [{"name": "'; DROP TABLE x; --"}]
    r = await _call(h, "read", f"SELECT id FROM {t} ORDER BY id", maxResultRows=2)
    assert (r.count, r.truncated) == (2, True)


async def test_mssql_write_rolls_back_and_timeout(server: tuple[EngineHandle, str]) -> None:
    h, t = server
    await _call(h, "write", f"INSERT INTO {t} VALUES (1, 'a')")
    with pytest.raises(SqlError):
        await _call(h, "write", f"UPDATE {t} SET name = 'z'; INSERT INTO {t} VALUES (1, 'dup')")
    assert (await _call(h, "read", f"SELECT name FROM {t}")).rows == [{"name": "a"}]
    with pytest.raises(SqlError) as err:
        await _call(h, "read", "WAITFOR DELAY '00:00:05'; SELECT 1 AS x", queryTimeoutMs=1000)
    assert err.value.code == "timeout"
    assert (await _call(h, "read", "SELECT 1 AS ok")).rows == [{"ok": 1}]
