"""``bollard.platform.client``: :class:`AsyncClient` against the app in process (ASGI) and
:class:`Client` against a real ``bollard serve``; typed errors built from the API's bodies."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bollard.platform import tokens
from bollard.platform.api.app import create_app
from bollard.platform.client import (
    ApprovalError,
    AsyncClient,
    AuthError,
    BollardClientError,
    Client,
    InvalidRequestError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
    UpstreamError,
    error_from,
    outcome,
)
from bollard.platform.model_results import model_json
from bollard.platform.runtime import Runtime
from tests.support.api import BASE_URL
from tests.support.integrations import rest_manifest, write_integration
from tests.support.paths import SHIPPED
from tests.support.standin import BollardServer, bollard, free_port

CONNECTOR = """
def execute(ctx):
    if ctx.operation == "fail":
        raise ValueError("the upstream said no")
    if ctx.operation == "big":
        return [{"n": i, "text": "x" * 200} for i in range(2000)]
    return {"operation": ctx.operation, "params": ctx.params}
"""


def echo_manifest() -> dict[str, Any]:
    m = rest_manifest()
    m["operations"] += [
        {"name": "write_it", "operationType": "write"},
        {"name": "fail"},
        {"name": "big"},
        {"name": "scarce", "rateLimit": {"requests": 1, "perSeconds": 3600}},
    ]
    return m


@pytest.fixture
async def clients(integrations_dir: Path, runtime: Runtime) -> AsyncIterator[tuple[AsyncClient, AsyncClient]]:
    """An agent and an admin :class:`AsyncClient` on the app over ``runtime``."""
    write_integration(integrations_dir, "echo", manifest=echo_manifest(), connector=CONNECTOR)
    runtime.registry.reload("echo")
    app = create_app(runtime=runtime)
    agent = AsyncClient(
        BASE_URL, await tokens.create_token(runtime.db, "agent"), transport=httpx.ASGITransport(app=app)
    )
    admin = AsyncClient(
        BASE_URL, await tokens.create_token(runtime.db, "admin"), transport=httpx.ASGITransport(app=app)
    )
    async with agent, admin:
        yield agent, admin


async def test_lists_and_calls(clients: tuple[AsyncClient, AsyncClient]) -> None:
    agent, _ = clients
    assert [i["slug"] for i in await agent.integrations()] == ["echo"]
    assert (await agent.integration("echo"))["operations"][0]["parametersSchema"]["type"] == "object"
    tools = await agent.tools("anthropic")
    assert "echo__echo" in {t["name"] for t in tools} and all("input_schema" in t for t in tools)
    body = await agent.call("echo", "echo", {"text": "hi"}, timeout=20)
    assert body["success"] is True and body["data"] == {"operation": "echo", "params": {"text": "hi"}}


async def test_errors_come_typed_from_the_api_body(clients: tuple[AsyncClient, AsyncClient]) -> None:
    agent, _ = clients
    with pytest.raises(InvalidRequestError) as e:
        await agent.call("echo", "echo", {"text": 5})
    assert e.value.code == "invalid_params" and e.value.status == 400
    assert e.value.details == [{"path": "params.text", "message": "expected string, got integer"}]
    with pytest.raises(NotFoundError) as nf:
        await agent.call("nope", "echo", {})
    assert nf.value.code == "unknown_integration"
    with pytest.raises(AuthError) as forbidden:
        await agent.test("echo")  # Test connection is for admins
    assert forbidden.value.code == "forbidden" and forbidden.value.status == 403
    with pytest.raises(UpstreamError) as up:
        await agent.call("echo", "fail", {})
    assert up.value.code == "connector_error" and "the upstream said no" in up.value.message
    await agent.call("echo", "scarce", {})
    with pytest.raises(RateLimitedError) as rl:
        await agent.call("echo", "scarce", {})
    assert rl.value.code == "rate_limited" and rl.value.retry_after is not None and rl.value.retry_after > 0
    anonymous = AsyncClient(BASE_URL, "bol_nope", transport=agent.http._transport)  # type: ignore[arg-type]
    with pytest.raises(AuthError) as unauth:
        await anonymous.integrations()
    assert unauth.value.code == "unauthorized" and isinstance(unauth.value, BollardClientError)


async def test_a_write_waits_for_a_person(clients: tuple[AsyncClient, AsyncClient]) -> None:
    agent, admin = clients
    held = await agent.call("echo", "write_it", {})
    assert held["status"] == "pending" and held["approvalId"]
    assert [a["id"] for a in await agent.approvals(status="pending")] == [held["approvalId"]]

    async def approve_when_listed() -> None:
        while not await admin.approvals(status="pending"):
            await asyncio.sleep(0.05)
        (pending,) = await admin.approvals(status="pending")
        await admin.approve(pending["id"])

    await admin.reject(held["approvalId"], "first one is not wanted")
    approver = asyncio.create_task(approve_when_listed())
    done = await agent.call("echo", "write_it", {}, wait_for_approval=30)
    await approver
    assert done["success"] is True and done["operation"] == "write_it"
    rejected = await agent.approval(held["approvalId"])
    assert rejected["status"] == "rejected" and rejected["reason"] == "first one is not wanted"
    with pytest.raises(ApprovalError) as decided:
        await admin.approve(held["approvalId"])
    assert decided.value.code == "approval_decided"


async def test_a_rejected_or_undecided_write_raises(clients: tuple[AsyncClient, AsyncClient]) -> None:
    agent, admin = clients
    with pytest.raises(ApprovalError) as pending:
        await agent.call("echo", "write_it", {}, wait_for_approval=0.2)
    assert pending.value.code == "approval_pending" and pending.value.approval is not None
    aid = pending.value.approval["id"]

    waiting = asyncio.create_task(agent.approval(aid, wait=30))
    await asyncio.sleep(0)
    await admin.reject(aid, "no")
    assert (await waiting)["status"] == "rejected"
    with pytest.raises(ApprovalError) as e:
        outcome(await agent.approval(aid))
    assert e.value.code == "approval_rejected" and e.value.reason == "no"


async def test_for_model_caps_a_big_result(clients: tuple[AsyncClient, AsyncClient]) -> None:
    agent, _ = clients
    body = await agent.call("echo", "big", {})
    assert len(model_json(body)) > 20_000
    small = agent.for_model(body, 5000)
    assert len(model_json(small)) <= 5000 and small["truncated"] is True and small["count"] == 2000
    assert Client.for_model(body) == agent.for_model(body)


def test_answers_that_are_not_bollard_errors() -> None:
    err = error_from(502, "<html>bad gateway</html>")
    assert isinstance(err, ServerError) and err.code == "bad_response"
    nobody = Client(f"http://127.0.0.1:{free_port()}", "t", timeout=5)  # nothing listens there
    with nobody, pytest.raises(TransportError) as e:
        nobody.integrations()
    assert e.value.code == "network_error" and e.value.status == 0


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BollardServer, str]]:
    root = tmp_path_factory.mktemp("client")
    integrations = root / "integrations"
    shutil.copytree(SHIPPED / "hotel", integrations / "hotel")
    env = {"BOLLARD_SECRET_KEY": "client-test-key", "BOLLARD_RELOAD": "false"}
    token = bollard("token", "create", "--role", "admin", "--data-dir", str(root / "data"), env=env).strip()
    server = BollardServer(integrations, root / "data", env)
    try:
        yield server, token
    finally:
        server.stop()


def test_sync_client_against_bollard_serve(served: tuple[BollardServer, str]) -> None:
    server, token = served
    with Client(server.url, token) as bollard_client:
        assert [i["slug"] for i in bollard_client.integrations()] == ["hotel"]
        names = {t["function"]["name"] for t in bollard_client.tools()}
        assert "hotel__cancel_reservation" in names
        rows = bollard_client.call("hotel", "list_reservations", {"status": "confirmed"})["data"]
        assert rows and {r["status"] for r in rows} == {"confirmed"}
        assert bollard_client.test("hotel")["ok"] is True

        approved: list[dict[str, Any]] = []

        def person() -> None:  # another program approves what is pending
            with Client(server.url, token) as admin:
                for _ in range(2000):  # until the call below is held (bounded)
                    if pending := admin.approvals(status="pending"):
                        break
                    time.sleep(0.05)
                approved.append(admin.approve(pending[0]["id"]))

        helper = threading.Thread(target=person)
        helper.start()
        done = bollard_client.call(
            "hotel", "cancel_reservation", {"id": rows[0]["id"]}, wait_for_approval=120
        )
        helper.join(60)
        assert done["success"] is True and done["rowsAffected"] == 1
        assert approved[0]["status"] == "succeeded"
        with pytest.raises(InvalidRequestError) as e:
            bollard_client.call("hotel", "get_reservation", {"id": "eight"})
        assert e.value.details[0]["path"] == "params.id"
