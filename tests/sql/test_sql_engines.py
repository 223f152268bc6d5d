"""Engines, pools, connection failures and SQLite paths (DESIGN §5, §7)."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest

from bollard.platform.sql import SqlError
from bollard.platform.sql.connection import build_url, tls_mode
from bollard.platform.sql.engine_cache import EngineCache
from bollard.platform.sql.engines import build_engine
from bollard.platform.sql.runner import check_sql_connection, run_sql
from bollard.platform.sql.sqlite import resolve_sqlite_path
from tests.support.databases import Db, open_db

PASSWORD = "Zq7-distinctive-P@ss:w/rd"


async def select(h: Any, query: str, **params: Any) -> Any:
    return await run_sql(
        h,
        query=query,
        operation_type="read",
        schema={},
        params=params,
        security={},
        read_only_connection=False,
    )


# --- URLs and TLS settings ------------------------------------------------------------


def test_url_is_built_from_parts_not_strings() -> None:
    url = build_url(
        "postgres",
        {
            "server": "db.example",
            "port": "6543",
            "database": "app",
            "username": "u@corp",
            "password": PASSWORD,
        },
    )
    assert (url.drivername, url.host, url.port, url.database) == (
        "postgresql+asyncpg",
        "db.example",
        6543,
        "app",
    )
    assert (url.username, url.password) == ("u@corp", PASSWORD)
    assert PASSWORD not in str(url)  # rendered URLs mask it
    assert build_url("mysql", {"server": "h"}).query == {"charset": "utf8mb4"}
    assert build_url("mssql", {"server": "h"}).port == 1433


@pytest.mark.parametrize("port", ["x", 0, 70000])
def test_bad_port_is_a_config_error(port: object) -> None:
    with pytest.raises(SqlError) as err:
        build_url("postgres", {"server": "h", "port": port})
    assert err.value.code == "config_error"


def test_unknown_engine_and_missing_server() -> None:
    with pytest.raises(SqlError, match="unsupported SQL engine"):
        build_engine("oracle", {}, {"server": "h"})
    with pytest.raises(SqlError, match="no server"):
        build_engine("postgres", {}, {"database": "x"})


@pytest.mark.parametrize(
    ("options", "credentials", "mode"),
    [
        ({}, {}, None),
        ({"encrypt": True}, {}, "verify-full"),
        ({"encrypt": True, "trustServerCertificate": True}, {}, "require"),
        ({"encrypt": True}, {"encrypt": False}, "disable"),
        ({}, {"ssl": "verify-ca"}, "verify-ca"),
        ({}, {"sslMode": "prefer"}, "prefer"),
        ({}, {"ssl": "true"}, "verify-full"),
    ],
)
def test_tls_mode(options: dict, credentials: dict, mode: str | None) -> None:
    assert tls_mode(options, credentials) == mode


def test_pool_sized_by_manifest() -> None:
    h = build_engine("postgres", {"security": {"maxConnectionPoolSize": 3}}, {"server": "127.0.0.1"})
    assert h.async_engine is not None
    assert h.async_engine.pool.size() == 3  # type: ignore[attr-defined]
    with pytest.raises(SqlError) as err:
        build_engine("postgres", {"security": {"maxConnectionPoolSize": 0}}, {"server": "127.0.0.1"})
    assert err.value.code == "config_error"


def test_mssql_engine_is_synchronous_pymssql() -> None:
    h = build_engine(
        "mssql",
        {"options": {"encrypt": True}},
        {"server": "sql.example", "database": "protel", "username": "sa", "password": PASSWORD},
    )
    assert h.async_engine is None and h.sync_engine is not None
    assert h.sync_engine.dialect.driver == "pymssql"
    assert h.sync_engine.url.password == PASSWORD


# --- connection failures --------------------------------------------------------------


async def _expect_connection_failed(h: Any) -> str:
    with pytest.raises(SqlError) as err:
        await select(h, "SELECT 1")
    assert err.value.code == "connection_failed"
    steps = await check_sql_connection(h, timeout_ms=5000)
    assert steps[0]["name"] == "connect" and steps[0]["ok"] is False
    for text in (err.value.message, steps[0]["message"]):
        assert PASSWORD not in text
        assert "://" not in text
    await h.dispose()
    return err.value.message


async def test_wrong_password_mariadb(maria: Db) -> None:
    creds = {**maria.credentials, "password": PASSWORD}
    message = await _expect_connection_failed(build_engine("mysql", {}, creds))
    assert "Access denied" in message


async def test_unknown_database(pg: Db, maria: Db) -> None:
    for db in (pg, maria):
        creds = {**db.credentials, "database": "bollard_no_such_db", "password": PASSWORD}
        message = await _expect_connection_failed(build_engine(db.engine, {}, creds))
        assert "bollard_no_such_db" in message


@pytest.mark.parametrize("engine", ["postgres", "mysql", "mssql"])
async def test_server_down(engine: str) -> None:
    creds = {"server": "127.0.0.1", "port": 1, "database": "x", "username": "u", "password": PASSWORD}
    h = build_engine(engine, {"options": {"connectionTimeout": 2000}}, creds)
    message = await _expect_connection_failed(h)
    assert "127.0.0.1:1" in message


async def test_tls_required_but_server_has_none(pg: Db, maria: Db) -> None:
    # Both test servers run without TLS: asking for it must fail, never fall back.
    for db in (pg, maria):
        creds = {**db.credentials, "ssl": True, "trustServerCertificate": True}
        message = await _expect_connection_failed(build_engine(db.engine, {}, creds))
        assert "SSL" in message or "TLS" in message


async def test_connection_test_steps(pg: Db) -> None:
    steps = await check_sql_connection(pg.handle())
    assert [(s["name"], s["ok"]) for s in steps] == [("connect", True), ("query", True)]
    assert all(isinstance(s["durationMs"], int) for s in steps)


# --- the engine cache -----------------------------------------------------------------


async def test_cache_reuses_and_rebuilds_on_change(pg: Db) -> None:
    cache = EngineCache()
    config = {"engine": "postgres", "security": {"maxConnectionPoolSize": 2}}
    creds = pg.credentials
    # the test user is a superuser; the opt-in is part of what the engine is built from
    get = functools.partial(cache.get, allow_privileged_roles=True)
    try:
        h1 = await get("hotel", "default", engine="postgres", connection_config=config, credentials=creds)
        assert (
            await get(
                "hotel", "default", engine="postgres", connection_config=config, credentials=dict(creds)
            )
            is h1
        )
        pid1 = (await select(h1, "SELECT pg_backend_pid() AS pid")).rows[0]["pid"]
        pool1 = h1.read_pool  # reads use the read pool
        assert pool1 is not None and pool1.get_size() == 1

        # a changed credential value builds a new engine and disposes the old pools
        h2 = await get(
            "hotel",
            "default",
            engine="postgres",
            connection_config=config,
            credentials={**creds, "password": "rotated-secret"},
        )
        assert h2 is not h1
        assert h1.read_pool is None and pool1.is_closing() and pool1.get_size() == 0
        pid2 = (await select(h2, "SELECT pg_backend_pid() AS pid")).rows[0]["pid"]
        assert pid2 != pid1

        # so does a changed manifest
        h3 = await get(
            "hotel",
            "default",
            engine="postgres",
            connection_config={**config, "security": {}},
            credentials={**creds, "password": "rotated-secret"},
        )
        assert h3 is not h2 and h3.pool_size == 5

        # another credential id is another engine
        other = await get("hotel", "tenant-b", engine="postgres", connection_config=config, credentials=creds)
        assert other is not h3 and len(cache) == 2
        await cache.invalidate("hotel", "tenant-b")
        assert len(cache) == 1
    finally:
        await cache.dispose_all()
    assert len(cache) == 0


# --- SQLite paths and the demo seed ------------------------------------------------------


def test_sqlite_paths_stay_inside_allowed_roots(tmp_path: Path) -> None:
    integ, data, outside = tmp_path / "integ", tmp_path / "data", tmp_path / "outside"
    for d in (integ, data, outside):
        d.mkdir()
    roots = [integ, data]
    assert resolve_sqlite_path("a.db", base_dir=data, allowed_roots=roots) == (data / "a.db").resolve()
    assert (
        resolve_sqlite_path(str(integ / "b.db"), base_dir=data, allowed_roots=roots)
        == (integ / "b.db").resolve()
    )
    (integ / "link").symlink_to(outside)
    bad = [
        "../outside/x.db",
        str(outside / "x.db"),
        str(integ / "link" / "x.db"),
        ":memory:",
        "file:x.db?mode=rw",
        "/etc/passwd",
    ]
    for value in bad:
        with pytest.raises(SqlError) as err:
            resolve_sqlite_path(value, base_dir=data, allowed_roots=roots)
        assert err.value.code == "config_error", value


def _demo(tmp_path: Path) -> tuple[Path, Path]:
    integ = tmp_path / "integrations" / "hotel"
    integ.mkdir(parents=True)
    (integ / "seed.sql").write_text(
        "CREATE TABLE rooms (id integer PRIMARY KEY, name text);\n"
        "INSERT INTO rooms VALUES (1, 'Garden; Suite'), (2, 'Attic');\n"
    )
    return integ, tmp_path / "data"


async def test_sqlite_demo_database_is_seeded_once(tmp_path: Path) -> None:
    integ, data = _demo(tmp_path)
    config = {"engine": "sqlite", "options": {"database": "hotel.db", "seedFile": "seed.sql"}}
    h = build_engine("sqlite", config, {}, slug="hotel", integration_dir=integ, data_dir=data)
    try:
        r = await select(h, "SELECT name FROM rooms ORDER BY id")
        assert r.rows == [{"name": "Garden; Suite"}, {"name": "Attic"}]
        assert (data / "sqlite" / "hotel" / "hotel.db").is_file()
        w = await run_sql(
            h,
            query="DELETE FROM rooms WHERE id = 2",
            operation_type="write",
            schema={},
            params={},
            security={},
            read_only_connection=False,
        )
        assert w.rows_affected == 1
    finally:
        await h.dispose()
    # a new engine (e.g. after a reload) keeps the data instead of seeding again
    h = build_engine("sqlite", config, {}, slug="hotel", integration_dir=integ, data_dir=data)
    try:
        assert (await select(h, "SELECT count(*) AS n FROM rooms")).rows == [{"n": 1}]
    finally:
        await h.dispose()


def test_sqlite_seed_and_credential_paths_are_checked(tmp_path: Path) -> None:
    integ, data = _demo(tmp_path)
    (tmp_path / "evil.sql").write_text("CREATE TABLE x (a);")
    cases: list[tuple[dict[str, Any], dict[str, Any]]] = [
        ({"options": {"database": "h.db", "seedFile": "../../evil.sql"}}, {}),
        ({"options": {"database": "h.db", "seedFile": "missing.sql"}}, {}),
        ({}, {"database": str(data / "missing.db")}),
        ({}, {"database": "/tmp/elsewhere.db"}),
        ({}, {}),
    ]
    for config, creds in cases:
        with pytest.raises(SqlError) as err:
            build_engine("sqlite", config, creds, slug="hotel", integration_dir=integ, data_dir=data)
        assert err.value.code == "config_error", (config, creds)


async def test_sqlite_cannot_attach_other_files(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "x.db"
    target.parent.mkdir()
    async for db in open_db("sqlite", tmp_path / "integ"):
        for op in ("read", "write"):
            for query in (f"ATTACH DATABASE '{target}' AS x", f"VACUUM INTO '{target}'"):
                with pytest.raises(SqlError) as err:
                    await run_sql(
                        db.handle(),
                        query=query,
                        operation_type=op,
                        schema={},
                        params={},
                        security={},
                        read_only_connection=False,
                    )
                assert "not allowed" in err.value.message or "cannot run" in err.value.message
    assert not target.exists()
