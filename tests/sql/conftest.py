"""Fixtures of the SQL tests: a fresh table's worth of PostgreSQL and MariaDB
(:func:`tests.support.databases.open_db`; skipped, or failed under
``BOLLARD_REQUIRE_DB=1``, when the server is unreachable). A module's own fixture of
the same name takes precedence."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.databases import Db, open_db


@pytest.fixture
async def pg(tmp_path: Path) -> AsyncIterator[Db]:
    async for d in open_db("postgres", tmp_path):
        yield d


@pytest.fixture
async def maria(tmp_path: Path) -> AsyncIterator[Db]:
    async for d in open_db("mysql", tmp_path):
        yield d
