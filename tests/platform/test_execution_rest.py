"""REST operations end to end: the sandbox, the egress policy and the execution service,
against a stand-in HTTP server on 127.0.0.1 (DESIGN §3, §4, §8)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.support.api import app_client, local_settings
from tests.support.integrations import rest_manifest, write_integration
from tests.support.standin import ServerThread

SECRET = "tok-Sup3r-Secret-Value-42"
STATE: dict[str, int] = {"flaky": 0}


async def me(request: Request) -> Response:
    if request.headers.get("authorization") != f"Bearer {SECRET}":
        return JSONResponse({"message": "Bad credentials"}, status_code=401)
    return JSONResponse({"login": "octo", "echo_auth": request.headers.get("authorization")})


async def flaky(request: Request) -> Response:
    STATE["flaky"] += 1
    if STATE["flaky"] % 3 != 0:
        return JSONResponse({"error": "try again"}, status_code=503)
    return JSONResponse({"ok": True, "attempt": STATE["flaky"]})


async def slow(request: Request) -> Response:
    await asyncio.sleep(float(request.query_params.get("s", "2")))
    return JSONResponse({"slow": True})


async def bounce(request: Request) -> Response:
    # to the same server under another host name: another origin
    return RedirectResponse(f"http://localhost:{request.url.port}/record", status_code=302)


async def record(request: Request) -> Response:
    return JSONResponse({"headers": dict(request.headers)})


APP = Starlette(
    routes=[
        Route("/me", me),
        Route("/flaky", flaky),
        Route("/slow", slow),
        Route("/bounce", bounce),
        Route("/record", record),
    ]
)

CONNECTOR = """
BASE = "{base}"

def auth():
    return None

def execute(ctx):
    h = {{"Authorization": "Bearer " + (ctx.secrets.get("accessToken") or "")}}
    op = ctx.operation
    if op == "me":
        r = ctx.http.get(BASE + "/me", headers=h)
        if r.status == 401:
            raise Exception("rejected: " + r.body["message"])
        return r.json()
    if op == "leak":
        ctx.log("token is " + ctx.secrets.get("accessToken"))
        raise Exception("boom with " + ctx.secrets.get("accessToken"))
    if op == "flaky":
        r = ctx.http.get(BASE + "/flaky")
        return {{"status": r.status, "body": r.body}}
    if op == "slow":
        r = ctx.http.get(BASE + "/slow", params={{"s": "3"}})
        return r.body
    if op == "bounce":
        h = {{"User-Agent": "svc " + ctx.secrets.get("accessToken"), "Accept-Language": "de"}}
        return ctx.http.get(BASE + "/bounce", headers=h).json()
    if op == "offlist":
        r = ctx.http.get("https://example.org/")
        return r.status
    if op == "spin":
        while True:
            pass
    raise Exception("Unknown operation: " + op)
"""


def ops() -> list[dict]:
    return [
        {"name": "me"},
        {"name": "leak"},
        {"name": "flaky"},
        {"name": "slow", "timeoutMs": 1000},
        {"name": "offlist"},
        {"name": "bounce"},
        {"name": "spin", "timeoutMs": 1500, "limits": {"cpuTimeMs": 1000}},
        {"name": "limited", "rateLimit": {"requests": 2, "perSeconds": 60}},
        {"name": "capped", "maxConcurrency": 1},
    ]


@pytest.fixture(scope="module")
def standin() -> Iterator[ServerThread]:
    with ServerThread(APP) as s:
        yield s


@pytest.fixture
async def client(
    standin: ServerThread, integrations_dir: Path, data_dir: Path
) -> AsyncIterator[httpx.AsyncClient]:
    connector = CONNECTOR.format(base=standin.url)
    connector = connector.replace(
        '    raise Exception("Unknown operation: " + op)',
        '    if op in ("limited", "capped"):\n'
        '        r = ctx.http.get(BASE + "/slow", params={"s": "0.5"})\n'
        "        return r.body\n"
        '    raise Exception("Unknown operation: " + op)',
    )
    write_integration(
        integrations_dir,
        "svc",
        manifest=rest_manifest(
            title="Service",
            authMethod="bearer_token",
            secretBindings=["accessToken"],
            allowedHosts=[standin.url, f"http://localhost:{standin.port}"],
            operations=ops(),
        ),
        connector=connector,
    )
    settings = local_settings(integrations_dir, data_dir)
    async with app_client(settings) as (c, rt):
        r = await c.put("/api/integrations/svc/credentials", json={"values": {"accessToken": SECRET}})
        assert r.status_code == 200
        c.runtime = rt  # type: ignore[attr-defined]
        yield c


async def call(c: httpx.AsyncClient, op: str, **body: object) -> httpx.Response:
    return await c.post(f"/api/integrations/svc/operations/{op}", json={"params": {}, **body})


async def test_connector_reaches_the_allowed_host_with_its_secret(client: httpx.AsyncClient) -> None:
    r = await call(client, "me")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["data"]["login"] == "octo"
    # the upstream echoed the token back; the host redacts it from the result
    assert SECRET not in r.text and body["data"]["echo_auth"] == "Bearer [REDACTED]"


async def test_secrets_never_leak_into_errors_or_the_log(client: httpx.AsyncClient) -> None:
    r = await call(client, "leak")
    assert r.status_code == 502
    assert r.json()["error"]["code"] == "connector_error"
    assert SECRET not in r.text and "[REDACTED]" in r.json()["error"]["message"]
    log = await client.get("/api/executions?operation=leak")
    assert SECRET not in log.text and log.json()["executions"][0]["errorCode"] == "connector_error"


async def test_a_redirect_to_another_origin_carries_no_header_holding_the_secret(
    client: httpx.AsyncClient,
) -> None:
    # The execution passes the call's secrets to egress: even a safe-listed header goes
    # only when its value holds none of them (DESIGN §4).
    r = await call(client, "bounce")
    assert r.status_code == 200, r.text
    headers = r.json()["data"]["headers"]
    assert headers["host"].startswith("localhost:")
    assert "user-agent" not in headers
    assert headers["accept-language"] == "de"


async def test_host_not_in_allowed_hosts_is_refused(client: httpx.AsyncClient) -> None:
    r = await call(client, "offlist")
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "host_not_allowed"
    assert "example.org" in r.json()["error"]["message"]
    assert (await call(client, "me")).status_code == 200


async def test_retries_are_counted_and_only_when_asked(client: httpx.AsyncClient) -> None:
    STATE["flaky"] = 0
    r = await call(client, "flaky")
    assert r.json()["data"]["status"] == 503  # no retries unless asked
    STATE["flaky"] = 0
    before = client.runtime.execution.retry_count  # type: ignore[attr-defined]
    r = await call(client, "flaky", retries=3)
    assert r.json()["data"] == {"status": 200, "body": {"ok": True, "attempt": 3}}
    assert client.runtime.execution.retry_count - before == 2  # type: ignore[attr-defined]
    assert STATE["flaky"] == 3


async def test_wall_time_and_cpu_limits(client: httpx.AsyncClient) -> None:
    r = await call(client, "slow")
    assert r.status_code == 504 and r.json()["error"]["code"] == "timeout"
    r = await call(client, "spin")
    assert r.json()["error"]["code"] in ("limit_exceeded", "timeout")
    assert (await call(client, "me")).status_code == 200  # the host carries on


async def test_caller_timeout_lowers_the_wall_time(client: httpx.AsyncClient) -> None:
    r = await call(client, "flaky", timeoutMs=1)
    assert r.json()["success"] is False and r.json()["error"]["code"] in ("timeout", "limit_exceeded")


async def test_rate_limit_answers_429_with_retry_after(client: httpx.AsyncClient) -> None:
    codes = [(await call(client, "limited")).status_code for _ in range(3)]
    assert codes[:2] == [200, 200]
    r = await call(client, "limited")
    assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limited"
    assert int(r.headers["retry-after"]) >= 1


async def test_concurrency_cap_answers_429(client: httpx.AsyncClient) -> None:
    results = await asyncio.gather(*[call(client, "capped") for _ in range(3)])
    codes = sorted(r.status_code for r in results)
    assert codes.count(200) >= 1 and 429 in codes
    refused = next(r for r in results if r.status_code == 429)
    assert refused.json()["error"]["code"] == "too_many_concurrent" and refused.headers["retry-after"] == "1"


async def test_unset_credentials_are_reported(client: httpx.AsyncClient) -> None:
    r = await call(client, "me", credentialId="other")
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_credential"
    r = await client.put("/api/integrations/svc/credentials/other", json={"values": {"accessToken": "wrong"}})
    r = await call(client, "me", credentialId="other")
    assert r.json()["error"]["message"] == "rejected: Bad credentials"
    assert json.loads(r.text)["success"] is False


async def test_replaced_version_retires_its_workers(
    client: httpx.AsyncClient, integrations_dir: Path
) -> None:
    rt = client.runtime  # type: ignore[attr-defined]
    assert (await call(client, "me")).status_code == 200
    old_key = next(k for k in rt.pool.stats() if k.startswith("svc:"))
    folder = integrations_dir / "svc"
    (folder / "connector.py").write_text((folder / "connector.py").read_text() + "\n# v2\n")
    rt.registry.reload("svc")
    assert old_key not in rt.pool.stats()
    assert (await call(client, "me")).status_code == 200
    assert any(k.startswith("svc:") and k != old_key for k in rt.pool.stats())


async def test_each_credential_has_its_own_workers(client: httpx.AsyncClient, integrations_dir: Path) -> None:
    """A worker serves one (integration version, credential) for its life (DESIGN §4.5):
    process-wide caches and their timing are never shared between tenants."""
    rt = client.runtime  # type: ignore[attr-defined]
    r = await client.put("/api/integrations/svc/credentials/other", json={"values": {"accessToken": SECRET}})
    assert r.status_code == 200
    assert (await call(client, "me")).status_code == 200
    assert (await call(client, "me", credentialId="other")).status_code == 200
    groups = {k.rpartition("/")[2]: v for k, v in rt.pool.stats().items() if k.startswith("svc:")}
    assert set(groups) == {"default", "other"}
    assert not set(groups["default"]["idle_pids"]) & set(groups["other"]["idle_pids"])
    # A new version retires the workers of every credential of the old one.
    folder = integrations_dir / "svc"
    (folder / "connector.py").write_text((folder / "connector.py").read_text() + "\n# v2\n")
    rt.registry.reload("svc")
    assert not [k for k in rt.pool.stats() if k.startswith("svc:")]
