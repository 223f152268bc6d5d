"""No secret leaks: connectors and SQL integrations that echo, log, raise and return their
secrets, and a database password in failing connections; the values must appear in no API
response, log line, execution record, approval or error message (DESIGN §7)."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bollard.platform.runtime import Runtime
from tests.support.api import app_client, local_settings
from tests.support.databases import PG_URL, credentials_from_url
from tests.support.integrations import postgres_manifest, rest_manifest, write_integration
from tests.support.standin import ServerThread

API_KEY = "sk-LEAKCHECK-7d1f0a9b2c"
PASSWORD = "Pw-LEAKCHECK-93jd83hd"
FORBIDDEN = [API_KEY, PASSWORD, base64.b64encode(API_KEY.encode()).decode().rstrip("=")]


async def echo(request: Request) -> Response:
    return JSONResponse({"query": request.url.query, "auth": request.headers.get("x-api-key")})


@pytest.fixture(scope="module")
def standin() -> Iterator[ServerThread]:
    with ServerThread(Starlette(routes=[Route("/echo", echo)])) as s:
        yield s


CONNECTOR = """
import base64

BASE = "{base}"

def test_connection(ctx):
    raise Exception("cannot log in with key " + ctx.secrets.get("apiKey"))

def execute(ctx):
    key = ctx.secrets.get("apiKey")
    op = ctx.operation
    if op == "return_it":
        return {{"key": key, "nested": [key, {{"deep": "prefix " + key}}], "b64": ctx.base64_encode(key)}}
    if op == "log_it":
        print("printing", key)
        ctx.log("logging " + key)
        return "ok"
    if op == "raise_it":
        raise Exception("failed for " + key)
    if op == "echo_it":
        r = ctx.http.get(BASE + "/echo", params={{"k": key}}, headers={{"x-api-key": key}})
        return r.body
    if op == "write_it":
        return {{"wrote": key}}
    raise Exception("unknown")
"""


@pytest.fixture
async def client(tmp_path: Path, standin: ServerThread) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    integrations = tmp_path / "integrations"
    write_integration(
        integrations,
        "leaky",
        manifest=rest_manifest(
            authMethod="api_key",
            secretBindings=["apiKey"],
            allowedHosts=[standin.url],
            operations=[{"name": n} for n in ("return_it", "log_it", "raise_it", "echo_it")]
            + [{"name": "write_it", "operationType": "write"}],
        ),
        connector=CONNECTOR.format(base=standin.url),
    )
    write_integration(
        integrations,
        "pgleak",
        connector=None,
        manifest=postgres_manifest(
            "PG", [{"name": "one", "query": "SELECT 1 AS one"}], secret_bindings=("username", "password")
        ),
    )
    settings = local_settings(
        integrations,
        tmp_path / "d",
        sql_allow_privileged_roles=True,  # the test user postgres is a superuser
    )
    async with app_client(settings) as (c, rt):
        yield c, rt


def clean(text: str) -> None:
    for secret in FORBIDDEN:
        assert secret not in text


async def test_no_secret_anywhere(
    client: tuple[httpx.AsyncClient, Runtime], caplog: pytest.LogCaptureFixture
) -> None:
    c, rt = client
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []

    r = await c.put("/api/integrations/leaky/credentials", json={"values": {"apiKey": API_KEY}})
    texts.append(r.text)
    pg = {k: str(v) for k, v in credentials_from_url(PG_URL).items()}
    pg.update(password=PASSWORD, database="no_such_db_leakcheck")
    r = await c.put("/api/integrations/pgleak/credentials", json={"values": pg})
    texts.append(r.text)

    for name in ("return_it", "log_it", "raise_it", "echo_it"):
        r = await c.post(f"/api/integrations/leaky/operations/{name}", json={"params": {}})
        texts.append(r.text)
    returned = (await c.post("/api/integrations/leaky/operations/return_it", json={"params": {}})).json()
    assert (
        returned["data"]["key"] == "[REDACTED]"
        and returned["data"]["nested"][1]["deep"] == "prefix [REDACTED]"
    )
    echoed = (await c.post("/api/integrations/leaky/operations/echo_it", json={"params": {}})).json()
    assert echoed["data"] == {"query": "k=[REDACTED]", "auth": "[REDACTED]"}

    r = await c.post("/api/integrations/leaky/operations/write_it", json={"params": {}})
    aid = r.json()["approvalId"]
    texts.append((await c.post(f"/api/approvals/{aid}/approve")).text)
    texts.append((await c.get(f"/api/approvals/{aid}")).text)
    texts.append((await c.get("/api/approvals")).text)

    texts.append((await c.post("/api/integrations/leaky/test")).text)
    texts.append(
        (await c.post("/api/integrations/leaky/test", json={"values": {"apiKey": API_KEY + "-unsaved"}})).text
    )
    r = await c.post("/api/integrations/pgleak/operations/one", json={"params": {}})
    assert r.json()["error"]["code"] == "connection_failed"
    texts.append(r.text)
    texts.append((await c.post("/api/integrations/pgleak/test")).text)

    texts.append((await c.get("/api/integrations/leaky")).text)
    texts.append((await c.get("/api/integrations/pgleak")).text)
    texts.append((await c.get("/api/integrations")).text)
    texts.append((await c.get("/api/executions?limit=500")).text)

    for t in texts:
        clean(t)
    clean("\n".join(rec.getMessage() for rec in caplog.records))
    assert any(
        "leaky.log_it" in rec.getMessage() and "[REDACTED]" in rec.getMessage() for rec in caplog.records
    )
    # the executions table, read directly, holds no secret either
    from sqlalchemy import select

    from bollard.platform.store.tables import approvals, executions

    async with rt.db.connect() as conn:
        rows = (await conn.execute(select(executions))).all() + (await conn.execute(select(approvals))).all()
    clean(repr(rows))
