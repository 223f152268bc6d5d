"""Shared fixtures: temporary data and integration folders, a started runtime, an API
client. Shared helpers live in :mod:`tests.support`; this file only defines fixtures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bollard.platform import tokens
from bollard.platform.api.app import create_app
from bollard.platform.runtime import Runtime
from bollard.platform.settings import Settings
from tests.support import loop_guard
from tests.support.api import BASE_URL, Api

loop_guard.install()

# The shared stand-in fixtures (``server``, ``egress``); a module's own fixture of the
# same name takes precedence.
pytest_plugins = ["tests.support.fixtures"]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    d = tmp_path / "data"
    d.mkdir()
    return d


@pytest.fixture
def integrations_dir(tmp_path: Path) -> Path:
    d = tmp_path / "integrations"
    d.mkdir()
    return d


@pytest.fixture
async def runtime(integrations_dir: Path, data_dir: Path) -> AsyncIterator[Runtime]:
    settings = Settings(
        integrations_dir=integrations_dir,
        data_dir=data_dir,
        secret_key="test-secret-key",
        reload=False,
        # the test database users (postgres) are superusers (DESIGN §5)
        sql_allow_privileged_roles=True,
    )
    async with Runtime(settings) as rt:
        yield rt


@pytest.fixture
async def api(runtime: Runtime) -> AsyncIterator[Api]:
    """An :class:`Api` on an app over ``runtime``, with fresh admin and agent tokens."""
    app = create_app(runtime=runtime)
    admin = await tokens.create_token(runtime.db, "admin")
    agent = await tokens.create_token(runtime.db, "agent")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        yield Api(client, admin, agent)
