"""Shared fixtures: temporary data directories, a started runtime, an API client."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

# The sandbox tests' shared fixtures (``server``, ``egress``); a module's own fixture of
# the same name takes precedence.
pytest_plugins = ["sandbox_kit"]

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO.parent / "shared" / "corpus" / "tale-manifests"
SHIPPED = REPO / "integrations"


def require_db() -> bool:
    """``BOLLARD_REQUIRE_DB=1`` turns "database unreachable" skips into failures (CI)."""
    return os.environ.get("BOLLARD_REQUIRE_DB") == "1"


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


def copy_integration(src: Path, integrations_dir: Path, slug: str | None = None) -> Path:
    dst = integrations_dir / (slug or src.name)
    shutil.copytree(src, dst)
    return dst


@pytest.fixture
async def runtime(integrations_dir: Path, data_dir: Path) -> AsyncIterator[object]:
    from bollard.platform.runtime import Runtime
    from bollard.platform.settings import Settings

    rt = Runtime(
        Settings(
            integrations_dir=integrations_dir,
            data_dir=data_dir,
            secret_key="test-secret-key",
            reload=False,
        )
    )
    await rt.start()
    try:
        yield rt
    finally:
        await rt.stop()


class Api:
    """An ASGI client for the app with an admin and an agent token."""

    def __init__(self, client: httpx.AsyncClient, admin: str, agent: str) -> None:
        self.client = client
        self.admin = {"Authorization": f"Bearer {admin}"}
        self.agent = {"Authorization": f"Bearer {agent}"}

    async def get(self, url: str, *, role: str = "admin", **kw: object) -> httpx.Response:
        return await self.client.get(url, headers=self.admin if role == "admin" else self.agent, **kw)  # type: ignore[arg-type]

    async def put(self, url: str, *, role: str = "admin", **kw: object) -> httpx.Response:
        return await self.client.put(url, headers=self.admin if role == "admin" else self.agent, **kw)  # type: ignore[arg-type]

    async def post(self, url: str, *, role: str = "admin", **kw: object) -> httpx.Response:
        return await self.client.post(url, headers=self.admin if role == "admin" else self.agent, **kw)  # type: ignore[arg-type]

    async def delete(self, url: str, *, role: str = "admin", **kw: object) -> httpx.Response:
        return await self.client.delete(url, headers=self.admin if role == "admin" else self.agent, **kw)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def app_client(settings: Any, *, role: str = "admin") -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """Start a runtime and app for ``settings`` (lifespan included) and yield an ASGI
    client authenticated with a fresh token of ``role``, and the runtime."""
    from bollard.platform import tokens
    from bollard.platform.api.app import create_app
    from bollard.platform.runtime import Runtime

    rt = Runtime(settings)
    app = create_app(runtime=rt)
    async with app.router.lifespan_context(app):
        token = await tokens.create_token(rt.db, role)  # type: ignore[arg-type]
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://bollard.test",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        ) as client:
            yield client, rt


@pytest.fixture
async def api(runtime: object) -> AsyncIterator[Api]:
    from bollard.platform import tokens
    from bollard.platform.api.app import create_app

    app = create_app(runtime=runtime)  # type: ignore[arg-type]
    admin = await tokens.create_token(runtime.db, "admin")  # type: ignore[attr-defined]
    agent = await tokens.create_token(runtime.db, "agent")  # type: ignore[attr-defined]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bollard.test") as client:
        yield Api(client, admin, agent)
