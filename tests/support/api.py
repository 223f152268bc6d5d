"""An ASGI client for the app: :class:`Api` (admin and agent tokens) and :func:`app_client`."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from bollard.platform import tokens
from bollard.platform.api.app import create_app
from bollard.platform.runtime import Runtime
from bollard.platform.settings import Settings
from bollard.platform.tokens import Role

BASE_URL = "http://bollard.test"


class Api:
    """An ASGI client for the app with an admin and an agent token; ``role`` picks one."""

    def __init__(self, client: httpx.AsyncClient, admin: str, agent: str) -> None:
        self.client = client
        self.admin = {"Authorization": f"Bearer {admin}"}
        self.agent = {"Authorization": f"Bearer {agent}"}

    def _headers(self, role: str) -> dict[str, str]:
        return self.admin if role == "admin" else self.agent

    async def get(self, url: str, *, role: str = "admin", **kw: Any) -> httpx.Response:
        return await self.client.get(url, headers=self._headers(role), **kw)

    async def put(self, url: str, *, role: str = "admin", **kw: Any) -> httpx.Response:
        return await self.client.put(url, headers=self._headers(role), **kw)

    async def post(self, url: str, *, role: str = "admin", **kw: Any) -> httpx.Response:
        return await self.client.post(url, headers=self._headers(role), **kw)

    async def delete(self, url: str, *, role: str = "admin", **kw: Any) -> httpx.Response:
        return await self.client.delete(url, headers=self._headers(role), **kw)


def local_settings(integrations_dir: Path, data_dir: Path, **overrides: Any) -> Settings:
    """Settings for a host under test whose upstreams are stand-ins on 127.0.0.1: the
    secret key ``k``, no folder watcher, private egress allowed; ``overrides`` on top."""
    values: dict[str, Any] = {"secret_key": "k", "reload": False, "allow_private_egress": True}
    return Settings(integrations_dir=integrations_dir, data_dir=data_dir, **{**values, **overrides})


@contextlib.asynccontextmanager
async def app_client(
    settings: Settings, *, role: Role = "admin"
) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    """Start a runtime and app for ``settings`` (lifespan included) and yield an ASGI
    client authenticated with a fresh token of ``role``, and the runtime."""
    rt = Runtime(settings)
    app = create_app(runtime=rt)
    async with app.router.lifespan_context(app):
        token = await tokens.create_token(rt.db, role)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url=BASE_URL,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        ) as client:
            yield client, rt
