"""Attack tests for SQL "reads" that are not reads (hardening issue items 13, 14, 15, 21;
DESIGN §5): server side effects of privileged roles, timeouts that leave the query running
on the server, results without a byte budget, and driver errors that echo caller input.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomysql
import asyncpg
import pytest
from sqlalchemy import make_url
from test_sql_runner import read, write

from bollard.platform.sql import SqlError
from bollard.platform.sql.engines import build_engine
from bollard.platform.sql.runner import check_sql_connection
from tests.support.databases import MYSQL_URL, PG_URL, Db, credentials_from_url, open_db

MIB = 1024 * 1024


@pytest.fixture
async def admin(pg: Db) -> AsyncIterator[asyncpg.Connection]:
    dsn = make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    con = await asyncpg.connect(dsn)
    try:
        yield con
    finally:
        await con.close()


@pytest.fixture
async def least_privilege(pg: Db, admin: asyncpg.Connection) -> AsyncIterator[dict[str, Any]]:
    """Credentials of a fresh LOGIN role that may only SELECT the test's table (trust
    auth on the test server: no password)."""
    role = f"bt_lp_{uuid.uuid4().hex[:10]}"
    await pg.execute(
        f"CREATE TABLE {pg.table} (id integer, name text)", f"INSERT INTO {pg.table} VALUES (1, 'a')"
    )
    await admin.execute(f"CREATE ROLE {role} LOGIN; GRANT SELECT ON {pg.table} TO {role}")
    try:
        yield {**credentials_from_url(PG_URL), "username": role, "role": role}
    finally:
        await admin.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = $1", role
        )
        await admin.execute(f"REVOKE ALL ON {pg.table} FROM {role}; DROP ROLE IF EXISTS {role}")


def pg_handle(pg: Db, creds: dict[str, Any] | None = None, **security: Any) -> Any:
    """An engine built as the host builds it by default (no opt-in for privileged roles)."""
    values = {k: v for k, v in (creds or pg.credentials).items() if k != "role"}
    h = build_engine("postgres", {"engine": "postgres", "security": security}, values, slug="tests")
    pg.handles.append(h)
    return h


# --- item 13: privileged roles and COPY ----------------------------------------------


@pytest.mark.parametrize(
    "copy",
    [
        "COPY (SELECT 'owned') TO '{path}'",
        "COPY (SELECT 1) TO PROGRAM 'touch {path}'",
        "copy (SELECT 1) TO stdout",
    ],
)
async def test_copy_is_refused_in_reads(pg: Db, tmp_path: Path, copy: str) -> None:
    # even with the operator's opt-in for privileged roles (the test user is a superuser)
    h = pg.handle({"maxConnectionPoolSize": 1}, allow_privileged_roles=True)
    path = tmp_path / f"copy-{uuid.uuid4().hex}"
    with pytest.raises(SqlError) as err:
        await read(h, "/* x */ " + copy.format(path=path))
    assert err.value.code == "read_only"
    assert "COPY" in err.value.message
    assert not path.exists()


async def test_a_superuser_is_refused_without_the_opt_in(pg: Db, admin: asyncpg.Connection) -> None:
    victim = await asyncpg.connect(
        make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        pid = victim.get_server_pid()
        h = pg_handle(pg)
        with pytest.raises(SqlError) as err:
            await read(
                h,
                "SELECT pg_terminate_backend(CAST(@pid AS integer)) AS killed",
                {"pid": pid},
                schema={"properties": {"pid": {"type": "integer"}}},
            )
        assert err.value.code == "config_error"
        message = err.value.message
        assert "superuser" in message
        assert "CREATE ROLE" in message and "GRANT SELECT" in message
        assert "BOLLARD_SQL_ALLOW_PRIVILEGED_ROLES" in message
        assert await victim.fetchval("SELECT 1") == 1  # still alive
        # writes use the other pool: refused the same way
        with pytest.raises(SqlError) as err:
            await write(
                h,
                "SELECT pg_terminate_backend(CAST(@pid AS integer))",
                {"pid": pid},
                schema={"properties": {"pid": {"type": "integer"}}},
            )
        assert err.value.code == "config_error" and "superuser" in err.value.message
        assert await victim.fetchval("SELECT 1") == 1
    finally:
        await victim.close()
    # Test connection says the same, as its own step after a successful connect
    steps = await check_sql_connection(pg_handle(pg), timeout_ms=5000)
    assert [(s["name"], s["ok"]) for s in steps] == [("connect", True), ("role", False)]
    assert "superuser" in steps[1]["message"] and "CREATE ROLE" in steps[1]["message"]


async def test_a_member_of_a_server_file_role_is_refused(
    pg: Db, admin: asyncpg.Connection, least_privilege: dict[str, Any]
) -> None:
    await admin.execute(f"GRANT pg_read_server_files TO {least_privilege['role']}")
    try:
        with pytest.raises(SqlError) as err:
            await read(pg_handle(pg, least_privilege), "SELECT pg_read_file('/etc/hostname') AS f")
        assert err.value.code == "config_error"
        assert "pg_read_server_files" in err.value.message
    finally:
        await admin.execute(f"REVOKE pg_read_server_files FROM {least_privilege['role']}")


async def test_a_least_privilege_role_reads_and_cannot_reach_the_server(
    pg: Db, admin: asyncpg.Connection, least_privilege: dict[str, Any]
) -> None:
    h = pg_handle(pg, least_privilege)
    assert (await read(h, f"SELECT id, name FROM {pg.table}")).rows == [{"id": 1, "name": "a"}]
    steps = await check_sql_connection(pg_handle(pg, least_privilege), timeout_ms=5000)
    assert [(s["name"], s["ok"]) for s in steps] == [("connect", True), ("query", True), ("role", True)]
    victim = await asyncpg.connect(
        make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    )
    try:
        with pytest.raises(SqlError) as err:
            await read(
                h,
                "SELECT pg_terminate_backend(CAST(@pid AS integer)) AS killed",
                {"pid": victim.get_server_pid()},
                schema={"properties": {"pid": {"type": "integer"}}},
            )
        assert err.value.code == "sql_error"
        assert err.value.details["sqlstate"] == "42501"  # insufficient_privilege
        assert await victim.fetchval("SELECT 1") == 1
    finally:
        await victim.close()


# --- item 14: a timeout cancels the query on the server ------------------------------


async def _running(admin: asyncpg.Connection, marker: str) -> int:
    """How many backends still run a statement carrying ``marker``, after polling up to
    ~5 s for them to go."""
    for _ in range(50):
        n: int = await admin.fetchval(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE $1 "
            "AND pid <> pg_backend_pid()",
            f"%{marker}%",
        )
        if n == 0:
            return 0
        await asyncio.sleep(0.1)
    return n


SWITCH_OFF = "SELECT set_config('statement_timeout', '0', true); SELECT pg_sleep(40), '{m}' AS m"


async def test_a_read_cannot_switch_its_timeout_off(pg: Db, admin: asyncpg.Connection) -> None:
    marker = f"m{uuid.uuid4().hex}"
    h = pg.handle({"maxConnectionPoolSize": 2}, allow_privileged_roles=True)
    with pytest.raises(SqlError) as err:
        await read(h, SWITCH_OFF.format(m=marker), security={"queryTimeoutMs": 1000})
    assert err.value.code == "timeout"
    assert await _running(admin, marker) == 0


async def test_timed_out_reads_leave_no_backend_running(pg: Db, admin: asyncpg.Connection) -> None:
    # 8 calls on a pool of 2: each times out; none may leave its backend running, and
    # the pool never holds more than its 2 connections
    marker = f"m{uuid.uuid4().hex}"
    h = pg.handle({"maxConnectionPoolSize": 2}, allow_privileged_roles=True)
    for _ in range(8):
        with pytest.raises(SqlError) as err:
            await read(h, SWITCH_OFF.format(m=marker), security={"queryTimeoutMs": 500})
        assert err.value.code == "timeout"
    assert await _running(admin, marker) == 0
    await h.quiesce()
    backends = await admin.fetchval(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'bollard' AND query LIKE $1",
        f"%{marker}%",
    )
    assert backends == 0


async def test_a_timed_out_postgres_write_is_cancelled_on_the_server(
    pg: Db, admin: asyncpg.Connection
) -> None:
    marker = f"m{uuid.uuid4().hex}"
    h = pg.handle({"maxConnectionPoolSize": 2}, allow_privileged_roles=True)
    query = f"SELECT set_config('statement_timeout', '0', false); SELECT pg_sleep(40), '{marker}'"
    with pytest.raises(SqlError) as err:
        await write(h, query, security={"queryTimeoutMs": 1000})
    assert err.value.code == "timeout"
    assert await _running(admin, marker) == 0


@pytest.mark.parametrize("work", ["SLEEP(40)", "BENCHMARK(4000000000, MD5('{m}'))"])
async def test_a_timed_out_mariadb_write_is_killed_on_the_server(maria: Db, work: str) -> None:
    # a CPU-bound query never notices the closed socket: only KILL QUERY stops it
    marker = f"m{uuid.uuid4().hex}"
    h = maria.handle({"maxConnectionPoolSize": 2})
    query = f"SET SESSION max_statement_time = 0; SELECT {work.format(m=marker)}, '{marker}'"
    with pytest.raises(SqlError) as err:
        await write(h, query, security={"queryTimeoutMs": 1000})
    assert err.value.code == "timeout"
    u = make_url(MYSQL_URL)
    con = await aiomysql.connect(
        host=u.host, port=u.port or 3306, user=u.username or "root", password=u.password or "", db=u.database
    )
    try:
        for _ in range(50):
            async with con.cursor() as cur:
                await cur.execute(
                    "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE %s AND ID <> "
                    "CONNECTION_ID()",
                    (f"%{marker}%",),
                )
                (n,) = await cur.fetchone()
            if n == 0:
                break
            await asyncio.sleep(0.1)
        assert n == 0
    finally:
        con.close()


# --- item 15: a byte budget on results -----------------------------------------------

BIG_ROWS = {
    "postgres": "SELECT repeat('x', 4*1024*1024) AS big FROM generate_series(1, 100)",
    "mysql": "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 100) "
    "SELECT REPEAT('x', 4*1024*1024) AS big FROM s",
    "sqlite": "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 100) "
    "SELECT replace(CAST(zeroblob(4*1024*1024) AS TEXT), char(0), 'x') AS big FROM s",
}


@pytest.mark.parametrize("engine", ["postgres", "mysql", "sqlite"])
async def test_results_stop_at_the_byte_budget(engine: str, tmp_path: Path) -> None:
    async for db in open_db(engine, tmp_path):
        h = db.handle({"maxConnectionPoolSize": 1}, allow_privileged_roles=True)
        r = await read(h, BIG_ROWS[engine])
        assert r.truncated is True and r.truncated_reason == "bytes"
        assert 1 <= r.count < 100
        assert sum(len(row["big"]) for row in r.rows) <= 5 * MIB  # the default budget
        r = await read(h, BIG_ROWS[engine], security={"maxResultBytes": 9 * MIB})
        assert (r.count, r.truncated_reason) == (2, "bytes")
        r = await read(h, BIG_ROWS[engine], security={"maxResultRows": 1})
        assert (r.count, r.truncated, r.truncated_reason) == (1, True, "rows")
        r = await read(h, "SELECT 1 AS one")
        assert (r.truncated, r.truncated_reason) == (False, None)


async def test_the_operator_ceiling_caps_the_byte_budget(pg: Db) -> None:
    h = pg.handle({"maxConnectionPoolSize": 1}, allow_privileged_roles=True)
    r = await read(h, BIG_ROWS["postgres"], security={"maxResultBytes": 50 * MIB}, max_bytes_ceiling=5 * MIB)
    assert r.truncated_reason == "bytes" and r.count == 1


# --- item 21: errors do not echo caller input ----------------------------------------

REAL_PASSWORD = "real-Pa55word-42"


async def test_errors_do_not_echo_parameters(pg: Db) -> None:
    # trust auth: the password is not needed, but it is the credential's secret
    creds = {**pg.credentials, "password": REAL_PASSWORD}
    h = build_engine("postgres", {}, creds, slug="tests", allow_privileged_roles=True)
    pg.handles.append(h)
    candidates = [f"guess-{i:04d}" for i in range(5000)]
    candidates[1234] = REAL_PASSWORD
    guess = " ".join(candidates)
    with pytest.raises(SqlError) as err:
        await read(
            h,
            "SELECT CAST(@p AS integer) AS n",
            {"p": guess},
            schema={"properties": {"p": {"type": "string"}}},
        )
    e = err.value
    assert e.code == "sql_error"
    text = f"{e.message} {e.details}"
    assert "guess-0001" not in text and "[REDACTED]" not in text and REAL_PASSWORD not in text
    assert "22P02" in e.message and e.details["sqlstate"] == "22P02"
    assert e.details["errorClass"] == "invalid_text_representation"
