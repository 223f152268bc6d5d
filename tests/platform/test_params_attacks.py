"""Parameters from agents are untrusted (issue 9, items 18 and 19; DESIGN §2, §8).

- a manifest ``pattern`` is evaluated by a linear-time engine (RE2): a catastrophic
  backtracking input neither holds the host nor changes the answer;
- parameters are capped in depth (32) and size (256 KB of JSON) and must be finite
  numbers (``NaN``/``Infinity`` are refused while the body is parsed);
- every list and detail view renders any stored row, even one written before these caps.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bollard.platform.runtime import Runtime
from bollard.platform.store.tables import approvals, executions
from tests.support.api import Api
from tests.support.integrations import rest_manifest, write_integration
from tests.support.standin import BollardServer, ServerThread, bollard

# Python's ``re`` backtracks exponentially on both: the first fails, the second matches
# only through its second branch after the first one backtracked through every split.
STRICT = "^([a-zA-Z0-9]+)+$"
LENIENT = "^(([a-z]+)+|[a-z]+!)$"
EVIL = "a" * 40 + "!"  # 2**40 steps for a backtracking engine: it would never answer

ARRIVED = threading.Event()
RELEASE = threading.Event()


async def held(request: Request) -> Response:
    """The upstream holds the connector's request until the test has seen /healthz answer."""
    ARRIVED.set()
    await asyncio.to_thread(RELEASE.wait, 120)
    return JSONResponse({"held": True})


CONNECTOR = """
def execute(ctx):
    if ctx.operation == "lenient":
        return ctx.http.get("{base}/held").json()
    return {{"code": ctx.params["code"]}}
"""


def redos_manifest(base: str) -> dict[str, Any]:
    def op(name: str, pattern: str) -> dict[str, Any]:
        schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": pattern}}}
        return {"name": name, "parametersSchema": schema}

    return rest_manifest(allowedHosts=[base], operations=[op("strict", STRICT), op("lenient", LENIENT)])


def test_redos_pattern_neither_holds_the_host_nor_changes_the_answer(tmp_path: Path) -> None:
    integrations, data = tmp_path / "i", tmp_path / "d"
    with ServerThread(Starlette(routes=[Route("/held", held)])) as upstream:
        write_integration(integrations, "redos", manifest=redos_manifest(upstream.url),
                          connector=CONNECTOR.format(base=upstream.url))  # fmt: skip
        env = {"BOLLARD_SECRET_KEY": "k", "BOLLARD_RELOAD": "false", "BOLLARD_ALLOW_PRIVATE_EGRESS": "true"}
        token = bollard("token", "create", "--role", "admin", "--data-dir", str(data), env=env).strip()
        server = BollardServer(integrations, data, env)
        pool = ThreadPoolExecutor(1)
        h = {"Authorization": f"Bearer {token}"}
        url = f"{server.url}/api/integrations/redos/operations"
        try:
            call = pool.submit(httpx.post, f"{url}/lenient", json={"params": {"code": EVIL}}, headers=h,
                               timeout=120)  # fmt: skip
            # The pattern matched (second branch), so the connector runs and its request
            # is held upstream: the host must still answer /healthz before that call ends.
            assert ARRIVED.wait(60), "the call never got past parameter validation (host held by the regex)"
            health = httpx.get(f"{server.url}/healthz", timeout=60)
            assert health.status_code == 200
            assert not call.done()  # ordering: /healthz answered while the ReDoS call is in flight
            RELEASE.set()
            r = call.result()
            assert r.status_code == 200, r.text
            assert r.json()["data"] == {"held": True}

            r = httpx.post(f"{url}/strict", json={"params": {"code": EVIL}}, headers=h, timeout=60)
            assert r.status_code == 400, r.text
            err = r.json()["error"]
            assert err["code"] == "invalid_params"
            assert err["details"] == [
                {"path": "params.code", "message": f'expected a string matching the pattern {STRICT}, '
                 f'got "{EVIL}"'}
            ]  # fmt: skip
            r = httpx.post(f"{url}/strict", json={"params": {"code": "abc123"}}, headers=h, timeout=60)
            assert r.status_code == 200 and r.json()["data"] == {"code": "abc123"}
        finally:
            RELEASE.set()
            server.kill()
            pool.shutdown(wait=True)


# --- depth, size, finite numbers ------------------------------------------------------


def writes_manifest() -> dict[str, Any]:
    return rest_manifest(
        operations=[
            {
                "name": "save",
                "operationType": "write",
                "parametersSchema": {
                    "type": "object",
                    "properties": {
                        "metadata": {"type": "object"},
                        "note": {"type": "string"},
                        "amount": {"type": "number", "minimum": 0, "maximum": 100},
                    },
                },
            }
        ]
    )


@pytest.fixture
async def writes(integrations_dir: Path, runtime: Runtime) -> str:
    write_integration(integrations_dir, "writes", manifest=writes_manifest())
    runtime.registry.reload("writes")
    return "/api/integrations/writes/operations/save"


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


async def views_answer(api: Api) -> None:
    """Every list and detail view of approvals and executions answers 200."""
    listed = await api.get("/api/approvals")
    assert listed.status_code == 200, listed.text
    for item in listed.json()["approvals"]:
        r = await api.get(f"/api/approvals/{item['id']}")
        assert r.status_code == 200, r.text
    listed = await api.get("/api/executions")
    assert listed.status_code == 200, listed.text
    for item in listed.json()["executions"]:
        r = await api.get(f"/api/executions/{item['id']}")
        assert r.status_code == 200, r.text


async def test_deep_parameters_are_refused_and_views_keep_working(
    api: Api, runtime: Runtime, writes: str
) -> None:
    r = await api.post(writes, role="agent", json={"params": {"metadata": nested(300)}})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_params"
    assert err["details"][0]["path"] == "params.metadata"
    assert "nested deeper than 32 levels" in err["details"][0]["message"]
    ok = await api.post(writes, role="agent", json={"params": {"metadata": nested(31)}})
    assert ok.status_code == 202, ok.text
    await runtime.execution_log.flush()
    await views_answer(api)


async def test_oversized_parameters_are_refused(api: Api, writes: str) -> None:
    r = await api.post(writes, role="agent", json={"params": {"note": "x" * 300_000}})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_params"
    assert err["details"][0]["path"] == "params"
    assert "256 KB" in err["details"][0]["message"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
async def test_non_finite_numbers_are_refused_while_parsing(
    api: Api, runtime: Runtime, writes: str, literal: str
) -> None:
    body = f'{{"params": {{"amount": {literal}, "metadata": {{"list": [1, {literal}]}}}}}}'
    headers = {**api.agent, "Content-Type": "application/json"}
    r = await api.client.post(writes, content=body, headers=headers)
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    paths = [d["path"] for d in err["details"]]
    assert paths == ["params.amount", "params.metadata.list[1]"]
    assert literal in err["message"] and "finite" in err["message"]
    listed = await api.get("/api/approvals")
    assert listed.json()["total"] == 0  # nothing was stored


async def test_views_render_rows_stored_before_the_caps(api: Api, runtime: Runtime, writes: str) -> None:
    """Rows written by an older version (300 deep, NaN) must not break any view."""
    now = datetime.now(UTC)
    poison = {"metadata": nested(300), "amount": float("nan"), "big": float("inf")}
    aid, eid = str(uuid.uuid4()), str(uuid.uuid4())
    async with runtime.db.begin() as conn:
        await conn.execute(
            approvals.insert().values(
                id=aid, integration="writes", operation="save", credential_id="default", params=poison,
                content_hash="x" * 64, version=1, summary={"params": poison}, status="pending",
                requested_at=now, expires_at=now + timedelta(hours=1), result={"data": poison},
            )
        )  # fmt: skip
        await conn.execute(
            executions.insert().values(
                id=eid, started_at=now, caller="api", integration="writes", operation="save",
                params=poison, status="succeeded", mock=False, logs=["line"],
            )
        )  # fmt: skip
    await views_answer(api)
    shown = (await api.get(f"/api/approvals/{aid}")).json()
    value = shown["params"]["metadata"]
    while isinstance(value, dict):
        value = value.get("a")
    assert isinstance(value, str) and "deeper" in value  # summarised, not dropped silently
    assert shown["params"]["amount"] is None and shown["params"]["big"] is None
    json.dumps(shown, allow_nan=False)
    r = await api.get(f"/api/executions/{eid}")
    assert r.status_code == 200 and r.json()["params"]["amount"] is None
