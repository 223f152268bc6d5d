"""The SQL runner against real PostgreSQL, MariaDB and SQLite (DESIGN §5)."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Connection

from bollard.platform.sql import SqlError
from bollard.platform.sql.runner import _run_with_deadline, run_sql
from tests.support.databases import Db, open_db

ENGINES = ["postgres", "mysql", "sqlite"]


@pytest.fixture(params=ENGINES)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Db]:
    async for d in open_db(request.param, tmp_path):
        yield d


def _types(db: Db) -> dict[str, str]:
    return {
        "ts": "datetime" if db.engine == "mysql" else "timestamp",
    }


async def make_reservations(db: Db) -> None:
    """A small table: 5 rows with a status, a date, a number, a flag and a time stamp."""
    t = db.table
    await db.execute(
        f"CREATE TABLE {t} (id integer PRIMARY KEY, name varchar(100), status varchar(20), "
        f"check_in date, amount numeric(10,2), flag boolean, created {_types(db)['ts']})",
        f"INSERT INTO {t} VALUES (1, 'Ada', 'confirmed', '2024-01-10', 10.50, true, '2024-01-01 08:00:00')",
        f"INSERT INTO {t} VALUES (2, 'Bob', 'cancelled', '2024-02-10', 20.00, false, '2024-01-02 09:30:00')",
        f"INSERT INTO {t} VALUES (3, 'Cy', 'confirmed', '2024-03-10', 30.25, true, '2024-01-03 10:00:00')",
        f"INSERT INTO {t} VALUES (4, 'Di', 'pending', '2024-04-10', 40.00, false, '2024-01-04 11:00:00')",
        f"INSERT INTO {t} VALUES (5, 'Ed', 'confirmed', '2024-05-10', 50.75, true, '2024-01-05 12:00:00')",
    )


SERIES = "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {n}) SELECT i FROM s"
SLOW = {
    "postgres": "SELECT pg_sleep(5)",
    "mysql": "SELECT SLEEP(5)",
    # never finishes on its own: only the progress handler stops it
    "sqlite": "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c",
}


async def read(
    h: Any,
    query: str,
    params: dict[str, Any] | None = None,
    *,
    schema: dict[str, Any] | None = None,
    security: dict[str, Any] | None = None,
    **kw: Any,
) -> Any:
    return await run_sql(
        h,
        query=query,
        operation_type="read",
        schema=schema or {},
        params=params or {},
        security=security or {},
        read_only_connection=False,
        **kw,
    )


async def write(
    h: Any,
    query: str,
    params: dict[str, Any] | None = None,
    *,
    schema: dict[str, Any] | None = None,
    security: dict[str, Any] | None = None,
    read_only_connection: bool = False,
) -> Any:
    return await run_sql(
        h,
        query=query,
        operation_type="write",
        schema=schema or {},
        params=params or {},
        security=security or {},
        read_only_connection=read_only_connection,
    )


# --- row cap --------------------------------------------------------------------------


async def test_row_cap_truncates(db: Db) -> None:
    h = db.handle()
    r = await read(h, SERIES.format(n=25), security={"maxResultRows": 10})
    assert [row["i"] for row in r.rows] == list(range(1, 11))
    assert (r.count, r.truncated, r.columns, r.rows_affected) == (10, True, ["i"], None)

    r = await read(h, SERIES.format(n=25), security={"maxResultRows": 25})
    assert (r.count, r.truncated) == (25, False)

    r = await read(h, SERIES.format(n=25), security={"maxResultRows": 25}, max_rows_ceiling=4)
    assert (r.count, r.truncated) == (4, True)


async def test_default_cap_is_1000(db: Db) -> None:
    r = await read(db.handle(), SERIES.format(n=1500))
    assert (r.count, r.truncated) == (1000, True)


@pytest.mark.parametrize("engine", ["postgres", "sqlite"])
async def test_rows_past_the_cap_are_never_computed(engine: str, tmp_path: Path) -> None:
    # Row 120 raises an error when evaluated. Fetching everything and slicing would
    # hit it; a cursor read of cap + 1 rows never does (SQLAlchemy's asyncpg adapter
    # reads at least 50 rows per batch, still far short of row 120).
    boom = {
        "postgres": "1 / (i - 120)",
        "sqlite": "CASE WHEN i = 120 THEN abs(-9223372036854775807 - 1) ELSE i END",
    }[engine]
    query = (
        "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 200) "
        f"SELECT i, {boom} AS x FROM s"
    )
    async for db in open_db(engine, tmp_path):
        h = db.handle()
        r = await read(h, query, security={"maxResultRows": 10})
        assert (r.count, r.truncated) == (10, True)
        with pytest.raises(SqlError) as err:
            await read(h, query, security={"maxResultRows": 150})
        assert err.value.code == "sql_error"


# --- timeouts -------------------------------------------------------------------------


async def test_server_timeout_then_healthy_connection(db: Db) -> None:
    h = db.handle({"maxConnectionPoolSize": 1})
    with pytest.raises(SqlError) as err:
        await read(h, SLOW[db.engine], security={"queryTimeoutMs": 300})
    assert err.value.code == "timeout"
    assert "300 ms" in err.value.message
    # the single pooled connection serves the next call
    r = await read(h, "SELECT 1 AS ok")
    assert r.rows == [{"ok": 1}]


async def test_timeout_in_a_write_rolls_back(db: Db) -> None:
    await make_reservations(db)
    h = db.handle({"maxConnectionPoolSize": 1})
    query = f"UPDATE {db.table} SET name = 'changed' WHERE id = 1; {SLOW[db.engine]}"
    with pytest.raises(SqlError) as err:
        await write(h, query, security={"queryTimeoutMs": 300})
    assert err.value.code == "timeout"
    assert await db.fetch(f"SELECT name FROM {db.table} WHERE id = 1") == [("Ada",)]
    assert (await read(h, f"SELECT count(*) AS n FROM {db.table}")).rows == [{"n": 5}]


def _sleep_without_server_timeout(conn: Connection, *, engine: str) -> Any:
    # Runs the slow statement without any server-side limit, so only the client
    # deadline can stop it.
    if engine == "postgres":
        conn.exec_driver_sql("SET LOCAL statement_timeout = 0")
    elif engine == "mysql":
        conn.exec_driver_sql("SET SESSION max_statement_time = 0")
        conn.info.pop("bollard_session", None)
    return conn.exec_driver_sql(SLOW[engine].replace("5", "3")).all()


@pytest.mark.parametrize("engine", ["postgres", "mysql"])
async def test_client_deadline_cancels_and_pool_recovers(engine: str, tmp_path: Path) -> None:
    async for db in open_db(engine, tmp_path):
        h = db.handle({"maxConnectionPoolSize": 1})
        fn = functools.partial(_sleep_without_server_timeout, engine=engine)
        with pytest.raises(SqlError) as err:
            await _run_with_deadline(h, fn, timeout_ms=200, deadline_ms=200)
        assert err.value.code == "timeout"
        r = await read(h, "SELECT 2 AS ok")
        assert r.rows == [{"ok": 2}]


# --- read-only ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE {t} SET name = 'x'",
        "DELETE FROM {t}",
        "SELECT 1; DELETE FROM {t}",
        "DROP TABLE {t}",
        "CREATE TABLE {t}_new (id integer)",
    ],
)
async def test_read_operations_cannot_write(db: Db, statement: str) -> None:
    await make_reservations(db)
    h = db.handle()
    with pytest.raises(SqlError) as err:
        await read(h, statement.format(t=db.table))
    assert err.value.code == "read_only", err.value.message
    assert await db.fetch(f"SELECT count(*) FROM {db.table} WHERE name <> 'x'") == [(5,)]
    # a write on the same pool afterwards is not stuck in read-only mode
    w = await write(h, f"UPDATE {db.table} SET name = 'z' WHERE id = 1")
    assert w.rows_affected == 1


async def test_read_only_connection_refuses_writes(db: Db) -> None:
    await make_reservations(db)
    with pytest.raises(SqlError) as err:
        await write(db.handle(), f"DELETE FROM {db.table}", read_only_connection=True)
    assert err.value.code == "read_only"
    assert "readOnly" in err.value.message
    assert await db.fetch(f"SELECT count(*) FROM {db.table}") == [(5,)]
    # reads still work on a read-only connection
    r = await run_sql(
        db.handle(),
        query=f"SELECT count(*) AS n FROM {db.table}",
        operation_type="read",
        schema={},
        params={},
        security={},
        read_only_connection=True,
    )
    assert r.rows == [{"n": 5}]


# --- writes ---------------------------------------------------------------------------


async def test_write_is_all_or_nothing(db: Db) -> None:
    await make_reservations(db)
    query = (
        f"UPDATE {db.table} SET name = 'changed' WHERE id = 1; "
        f"INSERT INTO {db.table} (id, name) VALUES (2, 'duplicate key')"
    )
    with pytest.raises(SqlError) as err:
        await write(db.handle(), query)
    assert err.value.code == "sql_error"
    assert await db.fetch(f"SELECT name FROM {db.table} WHERE id = 1") == [("Ada",)]


async def test_rows_affected_and_returned_rows(db: Db) -> None:
    await make_reservations(db)
    h = db.handle()
    schema = {"properties": {"status": {"type": "string"}, "maxId": {"type": "integer"}}}
    r = await write(
        h,
        f"UPDATE {db.table} SET status = @status WHERE id <= @maxId",
        {"status": "archived", "maxId": 3},
        schema=schema,
    )
    assert (r.rows_affected, r.rows, r.count) == (3, [], 0)
    # protel style: change, then report what changed
    r = await write(
        h,
        f"UPDATE {db.table} SET status = 'final' WHERE id > @maxId; "
        f"SELECT id FROM {db.table} WHERE status = 'final' ORDER BY id;",
        {"maxId": 3},
        schema=schema,
    )
    assert r.rows_affected == 2
    assert r.rows == [{"id": 4}, {"id": 5}]
    assert await db.fetch(f"SELECT count(*) FROM {db.table} WHERE status = 'archived'") == [(3,)]


# --- parameters -----------------------------------------------------------------------

FILTER_SCHEMA = {
    "type": "object",
    "properties": {
        "status": {"type": "string"},
        "fromDate": {"type": "string", "format": "date"},
    },
    "required": ["fromDate"],
}


async def test_omitted_parameters_are_typed_nulls(db: Db) -> None:
    await make_reservations(db)
    query = (
        f"SELECT id FROM {db.table} WHERE (@status IS NULL OR status = @status) "
        "AND check_in >= @fromDate ORDER BY id"
    )
    h = db.handle()
    r = await read(h, query, {"fromDate": "2024-03-01"}, schema=FILTER_SCHEMA)
    assert [row["id"] for row in r.rows] == [3, 4, 5]
    r = await read(h, query, {"fromDate": "2024-03-01", "status": "confirmed"}, schema=FILTER_SCHEMA)
    assert [row["id"] for row in r.rows] == [3, 5]


async def test_typed_parameters(db: Db) -> None:
    await make_reservations(db)
    schema = {
        "properties": {
            "minAmount": {"type": "number"},
            "maxId": {"type": "integer"},
            "flag": {"type": "boolean"},
            "after": {"type": "string", "format": "date-time"},
        }
    }
    query = (
        f"SELECT id FROM {db.table} WHERE amount > @minAmount AND id <= @maxId "
        "AND flag = @flag AND created > @after ORDER BY id"
    )
    r = await read(
        db.handle(),
        query,
        {"minAmount": 10.5, "maxId": 5, "flag": True, "after": "2024-01-01T08:00:00Z"},
        schema=schema,
    )
    assert [row["id"] for row in r.rows] == [3, 5]


async def test_values_come_back_json_friendly(db: Db) -> None:
    await make_reservations(db)
    r = await read(
        db.handle(),
        f"SELECT id, check_in, amount, created FROM {db.table} WHERE id = @id",
        {"id": 1},
        schema={"properties": {"id": {"type": "integer"}}},
    )
    row = r.rows[0]
    assert row["check_in"] == "2024-01-10"
    assert row["amount"] == 10.5
    assert row["created"].startswith("2024-01-01")
    assert "08:00:00" in row["created"]


INJECTIONS = [
    "'; DROP TABLE {t}; --",
    "x' OR '1'='1",
    "1; DELETE FROM {t}",
    "\\'; DELETE FROM {t}; -- ",
    "@status",
    "' UNION SELECT id FROM {t} --",
]


@pytest.mark.parametrize("payload", INJECTIONS)
async def test_injection_through_parameters_is_inert(db: Db, payload: str) -> None:
    await make_reservations(db)
    value = payload.format(t=db.table)
    h = db.handle()
    schema = {"properties": {"name": {"type": "string"}, "id": {"type": "integer"}}}
    r = await read(h, f"SELECT id FROM {db.table} WHERE name = @name", {"name": value}, schema=schema)
    assert r.rows == []
    w = await write(
        h, f"UPDATE {db.table} SET name = @name WHERE id = @id", {"name": value, "id": 2}, schema=schema
    )
    assert w.rows_affected == 1
    # stored verbatim, and nothing else happened
    assert await db.fetch(f"SELECT name FROM {db.table} WHERE id = 2") == [(value,)]
    assert await db.fetch(f"SELECT count(*) FROM {db.table}") == [(5,)]


async def test_invalid_parameter_value(db: Db) -> None:
    with pytest.raises(SqlError) as err:
        await read(
            db.handle(),
            "SELECT @d AS d",
            {"d": "10/01/2024"},
            schema={"properties": {"d": {"type": "string", "format": "date"}}},
        )
    assert err.value.code == "invalid_params"


async def test_sql_errors_carry_the_error_class_and_log_the_database_message(
    db: Db, caplog: pytest.LogCaptureFixture
) -> None:
    # the caller gets Bollard's message with the class and code; the driver's text,
    # which can echo caller input, goes to the server log (hardening issue item 21)
    with caplog.at_level(logging.WARNING, logger="bollard.sql"), pytest.raises(SqlError) as err:
        await read(db.handle(), f"SELECT * FROM {db.table}_missing")
    e = err.value
    assert e.code == "sql_error"
    assert (
        e.details["errorClass"]
        == {
            "postgres": "undefined_table",
            "mysql": "ER_NO_SUCH_TABLE",
            "sqlite": "SQLITE_ERROR",
        }[db.engine]
    )
    assert e.details["errorClass"] in e.message
    if db.engine != "sqlite":
        assert e.details["sqlstate"] in ("42P01", "42S02") and e.details["sqlstate"] in e.message
    if db.engine == "mysql":
        assert e.details["driverCode"] == 1146
    assert f"{db.table}_missing" not in e.message and "sqlalche.me" not in e.message
    logged = " ".join(r.getMessage() for r in caplog.records if r.name == "bollard.sql")
    assert f"{db.table}_missing" in logged and "sqlalche.me" not in logged


@pytest.mark.parametrize(
    "statement",
    [
        "COMMIT; DELETE FROM {t}",
        "SET TRANSACTION READ WRITE; DELETE FROM {t}",
        "ROLLBACK; DELETE FROM {t}",
        "BEGIN; DELETE FROM {t}",
    ],
)
async def test_reads_cannot_leave_their_read_only_transaction(db: Db, statement: str) -> None:
    await make_reservations(db)
    with pytest.raises(SqlError) as err:
        await read(db.handle(), statement.format(t=db.table))
    assert err.value.code == "read_only"
    assert await db.fetch(f"SELECT count(*) FROM {db.table}") == [(5,)]


async def test_pg_read_cannot_switch_its_transaction_to_read_write(tmp_path: Path) -> None:
    async for db in open_db("postgres", tmp_path):
        await make_reservations(db)
        h = db.handle()
        for query in (
            "SELECT set_config('transaction_read_only', 'off', true); DELETE FROM {t}",
            "SELECT set_config('default_transaction_read_only', 'off', false); DELETE FROM {t}",
        ):
            with pytest.raises(SqlError):
                await read(h, query.format(t=db.table))
        # the session default did not stick either: the next read still cannot write
        with pytest.raises(SqlError) as err:
            await read(h, f"DELETE FROM {db.table}")
        assert err.value.code == "read_only"
        assert await db.fetch(f"SELECT count(*) FROM {db.table}") == [(5,)]


async def _pg_sleep_raw(raw: Any) -> Any:
    await raw.execute("SET statement_timeout = 0")
    return await raw.fetch("SELECT pg_sleep(3)")


async def test_client_deadline_on_the_postgres_read_path(tmp_path: Path) -> None:
    async for db in open_db("postgres", tmp_path):
        h = db.handle({"maxConnectionPoolSize": 1})
        before = (await read(h, "SELECT pg_backend_pid() AS pid")).rows[0]["pid"]
        with pytest.raises(SqlError) as err:
            await _run_with_deadline(h, _pg_sleep_raw, timeout_ms=200, deadline_ms=200, pg_read=True)
        assert err.value.code == "timeout"
        r = await read(h, "SELECT current_setting('statement_timeout') AS t, pg_backend_pid() AS pid")
        # the same connection: its query was cancelled on the server and the session
        # (statement_timeout 0) reset before it served again
        assert r.rows[0]["t"] == "30s"
        assert r.rows[0]["pid"] == before


async def test_empty_results_still_name_their_columns(db: Db) -> None:
    await make_reservations(db)
    r = await read(db.handle(), f"SELECT id, name FROM {db.table} WHERE id < 0")
    assert (r.rows, r.count, r.truncated, r.columns) == ([], 0, False, ["id", "name"])


async def test_duplicate_column_names_are_suffixed(db: Db) -> None:
    r = await read(db.handle(), "SELECT 1 AS id, 2 AS id")
    assert r.columns == ["id", "id_2"]
    assert r.rows == [{"id": 1, "id_2": 2}]


async def test_postgres_returning_rows_and_count(tmp_path: Path) -> None:
    async for db in open_db("postgres", tmp_path):
        await make_reservations(db)
        r = await write(db.handle(), f"UPDATE {db.table} SET status = 'x' WHERE id > 3 RETURNING id")
        assert sorted(row["id"] for row in r.rows) == [4, 5]
        assert r.rows_affected == 2


async def test_mariadb_truncated_read_drops_its_connection_instead_of_draining(
    tmp_path: Path,
) -> None:
    async for db in open_db("mysql", tmp_path):
        h = db.handle({"maxConnectionPoolSize": 1})
        first = (await read(h, "SELECT CONNECTION_ID() AS id")).rows[0]["id"]
        r = await read(h, SERIES.format(n=5000), security={"maxResultRows": 10})
        assert (r.count, r.truncated) == (10, True)
        second = (await read(h, "SELECT CONNECTION_ID() AS id")).rows[0]["id"]
        assert second != first  # the unread rest went with the old connection
        # an untruncated read keeps its connection
        await read(h, SERIES.format(n=5), security={"maxResultRows": 10})
        assert (await read(h, "SELECT CONNECTION_ID() AS id")).rows[0]["id"] == second


@pytest.mark.parametrize("engine", ["postgres", "sqlite"])
async def test_ddl_in_a_failed_write_is_rolled_back(engine: str, tmp_path: Path) -> None:
    # (MariaDB/MySQL commit DDL implicitly; documented in docs/sql-runner.md.)
    async for db in open_db(engine, tmp_path):
        await make_reservations(db)
        query = f"CREATE TABLE {db.table}_new (id integer); INSERT INTO {db.table} (id) VALUES (1)"
        with pytest.raises(SqlError):
            await write(db.handle(), query)
        with pytest.raises(SqlError) as err:
            await read(db.handle(), f"SELECT count(*) AS n FROM {db.table}_new")
        assert err.value.code == "sql_error"  # the table was never created


async def test_mariadb_reads_cannot_loosen_their_session(tmp_path: Path) -> None:
    # A read-only session is what makes MariaDB refuse DDL in a read; a read must not be
    # able to switch it off, for its own later statements or for later reads.
    async for db in open_db("mysql", tmp_path):
        await make_reservations(db)
        fn, new = f"{db.table}_loosen", f"{db.table}_new"
        await db.execute(
            f"CREATE FUNCTION {fn}() RETURNS INT BEGIN "
            "SET SESSION TRANSACTION READ WRITE; "
            "SET @@session.max_statement_time = 0; RETURN 1; END"
        )
        try:
            h = db.handle({"maxConnectionPoolSize": 1})
            # the server runs an executable comment's text: refused at the start
            with pytest.raises(SqlError) as err:
                await read(h, "/*!SET @@session.tx_read_only = 0, @x = */ (SELECT 1)")
            assert err.value.code == "read_only"
            # a function already in the database: the session is read-only again before
            # every statement (DDL would commit the read's transaction and start anew)
            with pytest.raises(SqlError) as err:
                await read(h, f"SELECT {fn}() AS r; CREATE TABLE {new} (id integer)")
            assert err.value.code == "read_only"
            assert (await read(h, f"SELECT {fn}() AS r")).rows == [{"r": 1}]
            with pytest.raises(SqlError) as err:
                await read(h, f"CREATE TABLE {new} (id integer)")
            assert err.value.code == "read_only"
            r = await read(h, "SELECT @@session.tx_read_only AS ro, @@session.max_statement_time AS t")
            assert r.rows == [{"ro": 1, "t": 30}]
            assert await db.fetch(f"SHOW TABLES LIKE '{new}'") == []
            assert (await write(h, f"UPDATE {db.table} SET name = 'w' WHERE id = 1")).rows_affected == 1
        finally:
            await db.execute(f"DROP FUNCTION IF EXISTS {fn}", f"DROP TABLE IF EXISTS {new}")
