"""MariaDB/MySQL: one call runs only the statements Bollard split and checked, and no
session state outlives a call (DESIGN §5; hardening issue items 12 and 16)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import Connection

from bollard.platform.sql import SqlError
from bollard.platform.sql.runner import run_sql
from tests.support.databases import Db


async def read(h: Any, query: str, *, read_only_connection: bool = False) -> Any:
    return await run_sql(
        h,
        query=query,
        operation_type="read",
        schema={},
        params={},
        security={},
        read_only_connection=read_only_connection,
    )


async def test_nbsp_dash_comment_cannot_smuggle_a_committed_write(maria: Db) -> None:
    # MariaDB reads `--` followed by U+00A0 as two minus signs (and U+00A0 as an
    # identifier), not a comment: the rest of the line is code, so its `;` end
    # statements on the server.
    t = maria.table
    await maria.execute(f"CREATE TABLE {t} (id integer)")
    query = (
        "SELECT 1 --\u00a0 FROM (SELECT 2 AS \u00a0) AS d; SET SESSION tx_read_only = 0; COMMIT; "
        f"INSERT INTO {t} VALUES (666); COMMIT"
    )
    with pytest.raises(SqlError) as err:
        await read(maria.handle(), query, read_only_connection=True)
    assert err.value.code == "read_only"
    assert await maria.fetch(f"SELECT count(*) FROM {t}") == [(0,)]


async def test_connections_refuse_a_second_statement_in_one_call(maria: Db) -> None:
    # Multi-statement mode is off: even text that reaches the driver unsplit runs as
    # one statement or not at all.
    t = maria.table
    await maria.execute(f"CREATE TABLE {t} (id integer)")

    def two(conn: Connection) -> None:
        conn.exec_driver_sql(f"SELECT 1; INSERT INTO {t} VALUES (1)")

    with pytest.raises(Exception) as err:
        await maria.handle().run(two)
    assert "1064" in str(err.value)  # ER_PARSE_ERROR at the second statement
    assert await maria.fetch(f"SELECT count(*) FROM {t}") == [(0,)]


async def test_locks_and_user_variables_do_not_outlive_a_read(maria: Db) -> None:
    lock = f"bollard-{uuid.uuid4().hex[:12]}"
    h = maria.handle(security={"maxConnectionPoolSize": 1})  # the next call gets the same session
    first = await read(h, f"SELECT GET_LOCK('{lock}', 0) AS got, @'v' := 42 AS v")
    assert first.rows == [{"got": 1, "v": 42}]
    after = await read(h, f"SELECT IS_USED_LOCK('{lock}') AS holder, @'v' AS v")
    assert after.rows == [{"holder": None, "v": None}]


async def test_session_reset_keeps_writes_atomic(maria: Db) -> None:
    # The reset puts the session back to the server defaults (autocommit on): a write
    # after a read must still be all or nothing.
    t = maria.table
    await maria.execute(f"CREATE TABLE {t} (id integer PRIMARY KEY)")
    h = maria.handle(security={"maxConnectionPoolSize": 1})
    await read(h, "SELECT 1 AS one")
    with pytest.raises(SqlError):
        await run_sql(
            h,
            query=f"INSERT INTO {t} VALUES (1); INSERT INTO {t} VALUES (1)",
            operation_type="write",
            schema={},
            params={},
            security={},
            read_only_connection=False,
        )
    assert await maria.fetch(f"SELECT count(*) FROM {t}") == [(0,)]
    # and the read-only session mode of a read does not linger into the write
    w = await run_sql(
        h,
        query=f"INSERT INTO {t} VALUES (2)",
        operation_type="write",
        schema={},
        params={},
        security={},
        read_only_connection=False,
    )
    assert w.rows_affected == 1
