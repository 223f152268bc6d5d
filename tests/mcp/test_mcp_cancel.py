"""A client that goes away cancels its running read — the sandbox worker is killed, so its
upstream request is dropped — and never an approval (DESIGN §9)."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mcp.client.context import ClientRequestContext
from mcp_types import ElicitRequestParams, ElicitResult
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.support.integrations import rest_manifest, write_integration
from tests.support.mcp import http_client
from tests.support.paths import SHIPPED
from tests.support.standin import BollardServer, ServerThread

SLOW_S = 120  # the upstream answers after this long unless its caller goes first


class Slow:
    """An upstream that answers after :data:`SLOW_S` and records when its caller went away."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.dropped = threading.Event()
        self.app = Starlette(routes=[Route("/slow", self.slow)])

    async def slow(self, request: Request) -> JSONResponse:
        self.started.set()
        deadline = time.monotonic() + SLOW_S
        while time.monotonic() < deadline:
            if await request.is_disconnected():
                self.dropped.set()
                break
            await asyncio.sleep(0.05)
        return JSONResponse({"late": True})


@pytest.fixture(scope="module")
def slow() -> Iterator[tuple[Slow, str]]:
    upstream = Slow()
    with ServerThread(upstream.app) as thread:
        yield upstream, thread.url


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, slow: tuple[Slow, str]
) -> Iterator[tuple[BollardServer, str]]:
    root = tmp_path_factory.mktemp("cancel")
    integrations = root / "integrations"
    shutil.copytree(SHIPPED / "hotel", integrations / "hotel")
    _, url = slow
    read = {"name": "wait", "title": "Wait", "operationType": "read", "parametersSchema": {"type": "object"}}
    connector = f'def execute(ctx):\n    return ctx.http.get("{url}/slow").body\n'
    write_integration(integrations, "slow", rest_manifest(allowedHosts=[url], operations=[read]), connector)
    bollard = BollardServer(integrations, root / "data", {"BOLLARD_ALLOW_PRIVATE_EGRESS": "true"})
    try:
        yield bollard, (root / "data" / "admin.token").read_text().strip()
    finally:
        bollard.stop()


async def test_a_disconnect_cancels_a_running_read(
    server: tuple[BollardServer, str], slow: tuple[Slow, str]
) -> None:
    bollard, token = server
    upstream, _ = slow
    async with http_client(bollard.url, token) as client:
        call = asyncio.create_task(client.call_tool("slow__wait", {}))
        assert await asyncio.to_thread(upstream.started.wait, 60), "the read never reached the upstream"
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    # the worker was killed with the request: its connection to the upstream closes now, not
    # after SLOW_S (the bound here is generous for a loaded machine, far below SLOW_S)
    assert await asyncio.to_thread(upstream.dropped.wait, 60)


async def test_a_disconnect_never_cancels_an_approval(
    server: tuple[BollardServer, str], tmp_path: Path
) -> None:
    bollard, token = server
    headers = {"Authorization": f"Bearer {token}"}
    seen: list[str] = []

    async def opened(ctx: ClientRequestContext, params: ElicitRequestParams) -> ElicitResult:
        seen.append(getattr(params, "url", ""))
        return ElicitResult(action="accept")

    async with http_client(bollard.url, token, elicitation_callback=opened) as client:
        call = asyncio.create_task(client.call_tool("hotel__cancel_reservation", {"id": 3}))
        while not seen:  # the write is held and the client waits on its retry
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
    aid = seen[0].rsplit("/", 1)[1]
    approval = httpx.get(f"{bollard.url}/api/approvals/{aid}", headers=headers, timeout=30).json()
    assert approval["status"] == "pending"
    done = httpx.post(f"{bollard.url}/api/approvals/{aid}/approve", headers=headers, timeout=60).json()
    assert done["status"] == "succeeded" and done["result"]["rowsAffected"] == 1
