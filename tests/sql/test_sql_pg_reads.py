"""PostgreSQL reads on the read pool (pg_reads.py, DESIGN §5).

Each read runs in ``BEGIN READ ONLY`` on a session that starts read-only and with the
integration's ``statement_timeout``; its transaction is rolled back and its session reset
before the connection serves another read. The attack tests try to make a read write,
leave something behind that lets a later read on the same pooled connection write or run
without its server-side timeout, or have a side effect that a read-only transaction
allows but only a commit would keep.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from sqlalchemy import make_url
from test_sql_runner import make_reservations, read, write

from bollard.platform.sql import SqlError
from tests.support.databases import PG_URL, Db


@pytest.fixture
async def admin() -> AsyncIterator[asyncpg.Connection]:
    dsn = make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    con = await asyncpg.connect(dsn)
    try:
        yield con
    finally:
        await con.close()


async def _attempt(h: Any, query: str) -> SqlError | None:
    try:
        await read(h, query)
    except SqlError as exc:
        return exc
    return None


async def _session(h: Any) -> dict[str, Any]:
    r = await read(
        h,
        "SELECT current_setting('default_transaction_read_only') AS dflt, "
        "current_setting('transaction_read_only') AS ro, "
        "current_setting('statement_timeout') AS timeout, "
        "current_user = session_user AS own_role, pg_backend_pid() AS pid",
    )
    return r.rows[0]


async def _cannot_write(db: Db, h: Any) -> None:
    """Reads on ``h`` still cannot change data or the schema."""
    t = db.table
    for query in (
        f"WITH d AS (DELETE FROM {t} RETURNING 1) SELECT count(*) AS n FROM d",
        f"CREATE TABLE {t}_new (id integer)",
    ):
        with pytest.raises(SqlError) as err:
            await read(h, query)
        assert err.value.code == "read_only", err.value.message
    assert await db.fetch(f"SELECT count(*) FROM {t}") == [(5,)]
    assert await db.fetch(f"SELECT to_regclass('{t}_new') IS NULL") == [(True,)]


# --- the protocol ---------------------------------------------------------------------


async def test_reads_run_in_an_explicit_read_only_transaction(pg: Db) -> None:
    h = pg.handle({"maxConnectionPoolSize": 1})
    query = (
        "SELECT current_setting('transaction_read_only') AS ro, "
        "statement_timestamp() > transaction_timestamp() AS explicit, "
        "current_setting('statement_timeout') AS timeout, pg_backend_pid() AS pid"
    )
    first = (await read(h, query)).rows[0]
    # BEGIN READ ONLY ran before the statement (not an implicit one-statement transaction)
    assert (first["ro"], first["explicit"], first["timeout"]) == ("on", True, "30s")
    # a lower per-call timeout is SET LOCAL for that call only
    lower = (await read(h, query, security={"queryTimeoutMs": 1500})).rows[0]
    assert lower["timeout"] == "1500ms"
    again = (await read(h, query)).rows[0]
    assert again["timeout"] == "30s"
    # the same pooled connection throughout (reset, not reconnected)
    assert first["pid"] == lower["pid"] == again["pid"]
    session = await _session(h)
    assert (session["dflt"], session["own_role"]) == ("on", True)


async def test_truncated_reads_keep_their_connection(pg: Db) -> None:
    h = pg.handle({"maxConnectionPoolSize": 1})
    pid = (await read(h, "SELECT pg_backend_pid() AS pid")).rows[0]["pid"]
    r = await read(h, "SELECT i FROM generate_series(1, 100000) i", security={"maxResultRows": 5})
    assert (r.count, r.truncated) == (5, True)
    assert (await read(h, "SELECT pg_backend_pid() AS pid")).rows[0]["pid"] == pid


@pytest.mark.parametrize("own_timeout", [True, False])
async def test_the_server_enforces_the_timeout(pg: Db, own_timeout: bool) -> None:
    # own_timeout: the pool's sessions start with it; else it is SET LOCAL for the call
    h = pg.handle({"maxConnectionPoolSize": 1, "queryTimeoutMs": 300 if own_timeout else 30000})
    await _attempt(h, "SELECT set_config('statement_timeout', '0', false)")
    with pytest.raises(SqlError) as err:
        await read(h, "SELECT pg_sleep(5)", security={"queryTimeoutMs": 300})
    assert err.value.code == "timeout"
    assert "SQLSTATE 57014" in err.value.message  # the server's, not the client's


async def test_a_schema_change_does_not_fail_the_next_read(pg: Db) -> None:
    # asyncpg's cached statement is invalid after ALTER TABLE; the read is retried once
    await make_reservations(pg)
    h = pg.handle({"maxConnectionPoolSize": 1})
    assert (await read(h, f"SELECT * FROM {pg.table} WHERE id = 1")).columns[-1] == "created"
    await pg.execute(f"ALTER TABLE {pg.table} ADD COLUMN extra integer DEFAULT 7")
    r = await read(h, f"SELECT * FROM {pg.table} WHERE id = 1")
    assert (r.columns[-1], r.rows[0]["extra"]) == ("extra", 7)


async def test_dispose_waits_for_resets_and_closes_the_read_pool(pg: Db) -> None:
    h = pg.handle({"maxConnectionPoolSize": 3})
    await asyncio.gather(*(read(h, "SELECT pg_sleep(0.05)") for _ in range(5)))
    pool = h.read_pool
    assert pool is not None and pool.get_max_size() == 3 and pool.get_size() == 3
    await h.dispose()
    assert h.read_pool is None and pool.is_closing() and pool.get_size() == 0


# --- session attacks: nothing a read does may let a later read write ---------------------

SESSION_ATTACKS = [
    "SELECT set_config('default_transaction_read_only', 'off', false)",
    "SELECT set_config('statement_timeout', '0', false)",
    "SELECT set_config('role', 'pg_read_all_data', false)",
    "SELECT set_config('default_transaction_read_only', 'off', false), "
    "set_config('transaction_read_only', 'off', true)",
    # a view with a rule that calls set_config: no function name in the text
    "UPDATE pg_settings SET setting = 'off' WHERE name = 'default_transaction_read_only'",
    # a function already in the database that calls set_config
    "SELECT {t}_loosen()",
    "SET default_transaction_read_only = off",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
    "RESET default_transaction_read_only",
    "BEGIN READ WRITE",
    "START TRANSACTION READ WRITE",
    "COMMIT",
    "ROLLBACK; SET default_transaction_read_only = off",
    "SELECT 1; SELECT set_config('default_transaction_read_only', 'off', false)",
    # PostgreSQL's block comments nest: the statement is COMMIT, not SELECT
    "/* /* */ SELECT */ COMMIT",
    # outside a transaction block a DO block or procedure may COMMIT and go on writing
    "DO $$BEGIN PERFORM set_config('default_transaction_read_only', 'off', false); "
    "COMMIT; DELETE FROM {t}; END$$",
    "/* /* */ SELECT */ DO $$BEGIN COMMIT; DELETE FROM {t}; END$$",
    "CALL {t}_commit_and_delete()",
]


_REFUSED = ("SET", "RESET", "BEGIN", "START", "COMMIT", "ROLLBACK", "/* /* */ SELECT */ COMMIT")


@pytest.mark.parametrize("attack", SESSION_ATTACKS)
async def test_a_read_cannot_loosen_its_pooled_session(pg: Db, attack: str) -> None:
    await make_reservations(pg)
    t = pg.table
    await pg.execute(
        f"CREATE FUNCTION {t}_loosen() RETURNS text LANGUAGE sql AS $$ "
        "SELECT set_config('default_transaction_read_only', 'off', false) "
        "|| set_config('statement_timeout', '0', false) $$",
        f"CREATE PROCEDURE {t}_commit_and_delete() LANGUAGE plpgsql AS $$BEGIN "
        "PERFORM set_config('default_transaction_read_only', 'off', false); COMMIT; "
        f"DELETE FROM {t}; END$$",
    )
    try:
        h = pg.handle({"maxConnectionPoolSize": 1})
        err = await _attempt(h, attack.format(t=t))
        if attack.startswith(_REFUSED):  # by keyword, before anything runs
            assert err is not None and err.code == "read_only", err
        assert await pg.fetch(f"SELECT count(*) FROM {t}") == [(5,)]
        # the next read on the single pooled connection starts from a clean session
        session = await _session(h)
        assert (session["dflt"], session["ro"], session["timeout"], session["own_role"]) == (
            "on",
            "on",
            "30s",
            True,
        )
        await _cannot_write(pg, h)
        # writes (their own pool) are unaffected
        assert (await write(h, f"UPDATE {t} SET name = 'w' WHERE id = 1")).rows_affected == 1
    finally:
        await pg.execute(
            f"DROP FUNCTION IF EXISTS {t}_loosen()", f"DROP PROCEDURE IF EXISTS {t}_commit_and_delete()"
        )


async def test_a_session_reported_read_write_is_discarded(pg: Db) -> None:
    h = pg.handle({"maxConnectionPoolSize": 1})
    pid = (await _session(h))["pid"]
    await read(h, "SELECT set_config('default_transaction_read_only', 'off', false)")
    # the server reported the change before the call ended: that connection was closed
    assert (await _session(h))["pid"] != pid


async def test_a_session_that_does_not_start_read_only_still_reads_read_only(pg: Db) -> None:
    # e.g. a proxy that drops the startup setting: BEGIN READ ONLY still holds, and
    # each such connection is discarded after its read
    await make_reservations(pg)
    h = pg.handle({"maxConnectionPoolSize": 1})
    assert h.read_connect is not None
    h.read_connect["server_settings"]["default_transaction_read_only"] = "off"
    first = (await _session(h))["pid"]
    assert (await _session(h))["pid"] != first
    await _cannot_write(pg, h)


# --- transactional side effects a read-only transaction allows -------------------------


async def test_side_effects_of_a_read_are_rolled_back(pg: Db, admin: asyncpg.Connection) -> None:
    # PostgreSQL lets a read-only transaction create, write and unlink large objects and
    # NOTIFY; only the rollback keeps a read from changing anything (why reads are not
    # run as implicit, committing one-statement transactions).
    h = pg.handle({"maxConnectionPoolSize": 1})
    oid = await admin.fetchval("SELECT lo_from_bytea(0, 'original')")
    channel = f"bollard_{uuid.uuid4().hex[:8]}"
    heard: list[str] = []
    await admin.add_listener(channel, lambda *args: heard.append(args[3]))
    try:
        created = (await read(h, "SELECT lo_from_bytea(0, 'new') AS oid")).rows[0]["oid"]
        for query in (
            f"SELECT lo_put({oid}, 0, 'CHANGED')",
            f"SELECT lo_unlink({oid})",
            f"SELECT pg_notify('{channel}', 'from a read')",
        ):
            await read(h, query)
        await read(h, "SELECT 1 AS flush")  # runs after the previous read's rollback
        await asyncio.sleep(0.3)  # give a (wrongly) committed NOTIFY time to arrive
        assert heard == []
        assert await admin.fetchval(f"SELECT lo_get({oid})") == b"original"
        assert not await admin.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_largeobject_metadata WHERE oid = $1)", created
        )
    finally:
        await admin.execute(f"SELECT lo_unlink({oid})")


async def test_session_locks_of_a_read_are_released(pg: Db, admin: asyncpg.Connection) -> None:
    h = pg.handle({"maxConnectionPoolSize": 1})
    key = uuid.uuid4().int % 2**62
    await read(h, f"SELECT pg_advisory_lock({key})")
    await read(h, "SELECT 1 AS flush")
    assert await admin.fetchval("SELECT pg_try_advisory_lock($1)", key)
    await admin.execute("SELECT pg_advisory_unlock_all()")


async def test_reads_without_adaptive_batches(pg: Db, monkeypatch: pytest.MonkeyPatch) -> None:
    # fixed batches for an asyncpg whose cursor iterator has no _prefetch slot
    from bollard.platform.sql import pg_reads

    monkeypatch.setattr(pg_reads, "_ADAPTIVE_BATCHES", False)
    await make_reservations(pg)
    h = pg.handle({"maxConnectionPoolSize": 1})
    r = await read(h, "SELECT i FROM generate_series(1, 100) i", security={"maxResultRows": 3})
    assert (r.rows, r.truncated) == ([{"i": 1}, {"i": 2}, {"i": 3}], True)
    r = await read(h, f"SELECT id, name FROM {pg.table} WHERE id < 0")
    assert (r.rows, r.columns) == ([], ["id", "name"])
    await _cannot_write(pg, h)
