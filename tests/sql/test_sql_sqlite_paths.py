"""SQLite integrations open only their own files (DESIGN §5; hardening issue item 11).

A sqlite ``database`` must lie inside the integration folder or
``<data_dir>/sqlite/<slug>/``: never the state database ``<data_dir>/bollard.db`` nor
another integration's folder, and the path is checked again whenever a pooled
connection opens (a file swapped for a symlink later is refused).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from bollard.platform.sql import SqlError
from bollard.platform.sql.engines import build_engine
from bollard.platform.sql.runner import run_sql


def _db(path: Path, secret: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE secrets (v text)")
    con.execute("INSERT INTO secrets VALUES (?)", (secret,))
    con.commit()
    con.close()


@pytest.fixture
def layout(tmp_path: Path) -> tuple[Path, Path]:
    """(integration folder of `evil`, data dir holding bollard.db and `victim`'s database)."""
    data = tmp_path / "data"
    _db(data / "bollard.db", "admin-token-hash")
    _db(data / "sqlite" / "victim" / "victim.db", "victim-row")
    integ = tmp_path / "integrations" / "evil"
    integ.mkdir(parents=True)
    return integ, data


async def read(h: Any, query: str) -> Any:
    return await run_sql(
        h, query=query, operation_type="read", schema={}, params={}, security={}, read_only_connection=False
    )


@pytest.mark.parametrize("database", ["../../bollard.db", "../victim/victim.db"])
def test_manifest_database_cannot_leave_its_folders(layout: tuple[Path, Path], database: str) -> None:
    integ, data = layout
    with pytest.raises(SqlError) as err:
        build_engine(
            "sqlite",
            {"engine": "sqlite", "options": {"database": database}},
            {},
            slug="evil",
            integration_dir=integ,
            data_dir=data,
        )
    assert err.value.code == "config_error"
    assert "sqlConnectionConfig.options.database" in err.value.message


def test_credential_database_cannot_name_the_state_database(layout: tuple[Path, Path]) -> None:
    integ, data = layout
    for value in (str(data / "bollard.db"), str(data / "sqlite" / "victim" / "victim.db")):
        with pytest.raises(SqlError) as err:
            build_engine("sqlite", {}, {"database": value}, slug="evil", integration_dir=integ, data_dir=data)
        assert err.value.code == "config_error"
        assert "database" in err.value.message


async def test_symlink_swapped_in_after_the_engine_was_built_is_refused(layout: tuple[Path, Path]) -> None:
    integ, data = layout
    own = data / "sqlite" / "evil" / "own.db"
    _db(own, "own-row")
    h = build_engine(
        "sqlite",
        {"engine": "sqlite", "options": {"database": "own.db"}},
        {},
        slug="evil",
        integration_dir=integ,
        data_dir=data,
    )
    try:
        assert (await read(h, "SELECT v FROM secrets")).rows == [{"v": "own-row"}]
        own.unlink()
        own.symlink_to(data / "bollard.db")
        assert h.async_engine is not None
        await h.async_engine.dispose()  # the next call opens a new pooled connection
        with pytest.raises(SqlError) as err:
            await read(h, "SELECT v FROM secrets")
        assert err.value.code == "config_error"
        assert "sqlConnectionConfig.options.database" in err.value.message
    finally:
        await h.dispose()


async def test_own_folders_still_work(layout: tuple[Path, Path]) -> None:
    integ, data = layout
    _db(integ / "shipped.db", "shipped-row")
    for config, creds in (
        ({"options": {"database": "fresh.db"}}, {}),
        ({}, {"database": str(integ / "shipped.db")}),
    ):
        h = build_engine("sqlite", config, creds, slug="evil", integration_dir=integ, data_dir=data)
        try:
            r = await read(h, "SELECT 1 AS one")
            assert r.rows == [{"one": 1}]
        finally:
            await h.dispose()
    assert (data / "sqlite" / "evil" / "fresh.db").is_file()
