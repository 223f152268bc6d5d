"""A TypeScript connector end to end through the HTTP API (DESIGN §3, §8): Tale's
connector shape in an integration folder, Test connection, a read against a local HTTPS
stand-in (reached through the operator's resolve override, so the connector's base URL
stays a constant), a write held for approval and run once approved, ``ctx.files`` from
TypeScript, an upload of a ``connector.ts`` package, and a load error with its line."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bollard.platform.runtime import Runtime
from bollard.platform.settings import Settings
from tests.support.api import app_client
from tests.support.deno import require_deno
from tests.support.integrations import rest_manifest, write_integration
from tests.support.standin import ServerThread, make_certificates

pytestmark = pytest.mark.asyncio(loop_scope="module")

UPSTREAM = "api.items.example"

CONNECTOR = """
interface HttpResponse { status: number; body: unknown; json(): unknown; text(): string }

const API_BASE = 'https://api.items.example';

function auth(ctx: any): Record<string, string> {
  const token = ctx.secrets.get('apiKey');
  if (!token) throw new Error('The API key is required.');
  return { Authorization: 'Bearer ' + token, 'Content-Type': 'application/json' };
}

const connector = {
  operations: ['list_items', 'create_item', 'export_items'],

  testConnection: function (ctx: any) {
    const r: HttpResponse = ctx.http.get(API_BASE + '/me', { headers: auth(ctx) });
    if (r.status === 401) throw new Error('The API rejected the key.');
    return { status: 'ok', message: 'connected as ' + (r.json() as any).name };
  },

  execute: function (ctx: any) {
    const headers = auth(ctx);
    if (ctx.operation === 'list_items') {
      const r: HttpResponse = ctx.http.get(
        API_BASE + '/items?limit=' + encodeURIComponent(String(ctx.params.limit ?? 10)), { headers });
      if (r.status !== 200) throw new Error('list failed (' + r.status + '): ' + r.text());
      const items = (r.json() as any).items as Array<{ id: number; name: string }>;
      return { items: items.map((i) => ({ id: i.id, name: i.name.toUpperCase() })), count: items.length };
    }
    if (ctx.operation === 'create_item') {
      const r: HttpResponse = ctx.http.post(API_BASE + '/items', {
        headers, body: JSON.stringify({ name: ctx.params.name }) });
      return { created: r.json() };
    }
    if (ctx.operation === 'export_items') {
      const r: HttpResponse = ctx.http.get(API_BASE + '/items', { headers });
      return ctx.files.store(r.text(), { contentType: 'application/json', fileName: 'items.json' });
    }
    throw new Error('Unknown operation: ' + ctx.operation);
  },
};
"""

ITEMS = [{"id": 1, "name": "bollard"}, {"id": 2, "name": "kerb"}]


async def me(request: Request) -> Response:
    if request.headers.get("authorization") != "Bearer good":
        return JSONResponse({"error": "bad key"}, status_code=401)
    return JSONResponse({"name": "tester"})


async def items(request: Request) -> Response:
    if request.headers.get("authorization") != "Bearer good":
        return JSONResponse({"error": "bad key"}, status_code=401)
    if request.method == "POST":
        body = json.loads(await request.body())
        return JSONResponse({"id": 3, "name": body["name"]}, status_code=201)
    limit = int(request.query_params.get("limit", "10"))
    return JSONResponse({"items": ITEMS[:limit]})


@pytest.fixture(autouse=True)
def _deno() -> None:
    require_deno()


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, Path]]:
    ca, cert, key = make_certificates(tmp_path_factory.mktemp("tls"), (UPSTREAM,))
    app = Starlette(routes=[Route("/me", me), Route("/items", items, methods=["GET", "POST"])])
    with ServerThread(app, ssl_certfile=str(cert), ssl_keyfile=str(key)) as server:
        yield server, ca


def manifest() -> dict[str, Any]:
    schema = {"type": "object", "properties": {"limit": {"type": "integer"}, "name": {"type": "string"}}}
    return rest_manifest(
        title="Items",
        authMethod="api_key",
        secretBindings=["apiKey"],
        allowedHosts=[UPSTREAM],
        operations=[
            {"name": "list_items", "operationType": "read", "parametersSchema": schema},
            {"name": "create_item", "operationType": "write", "parametersSchema": schema},
            {"name": "export_items", "operationType": "read", "parametersSchema": schema},
        ],
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def api(
    tmp_path_factory: pytest.TempPathFactory, upstream: tuple[ServerThread, Path]
) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    require_deno()
    root = tmp_path_factory.mktemp("jsapi")
    write_integration(root / "integrations", "items", manifest(), None, {"connector.ts": CONNECTOR})
    settings = Settings(
        integrations_dir=root / "integrations",
        data_dir=root / "data",
        secret_key="k",
        reload=False,
        egress_resolve=f"{UPSTREAM}:443=127.0.0.1:{upstream[0].port}",
        egress_ca_bundle=upstream[1],
    )
    async with app_client(settings) as pair:
        client, _ = pair
        r = await client.put("/api/integrations/items/credentials", json={"values": {"apiKey": "good"}})
        assert r.status_code in (200, 204), r.text
        yield pair


async def test_catalog_and_test_connection(api: tuple[httpx.AsyncClient, Runtime]) -> None:
    client, _ = api
    detail = (await client.get("/api/integrations/items")).json()
    assert detail["status"] == "ready", detail
    report = (await client.post("/api/integrations/items/test")).json()
    assert report["ok"] is True, report
    assert report["message"] == "connected as tester"
    bad = (await client.post("/api/integrations/items/test", json={"values": {"apiKey": "wrong"}})).json()
    assert bad["ok"] is False and "rejected the key" in bad["message"], bad


async def test_healthz_lists_the_deno_layers(api: tuple[httpx.AsyncClient, Runtime]) -> None:
    client, _ = api
    await client.post("/api/integrations/items/operations/list_items", json={"params": {}})
    health = (await client.get("/healthz")).json()
    js = health["sandboxJs"]
    assert js["runtime"] == "deno", js
    for layer in ("network_namespace", "rlimits", "no_new_privs", "seccomp"):
        assert js[layer] is True, (layer, js)


async def test_a_read(api: tuple[httpx.AsyncClient, Runtime]) -> None:
    client, _ = api
    r = await client.post("/api/integrations/items/operations/list_items", json={"params": {"limit": 1}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["success"] is True
    assert body["data"] == {"items": [{"id": 1, "name": "BOLLARD"}], "count": 1}


async def test_a_write_waits_for_approval(api: tuple[httpx.AsyncClient, Runtime]) -> None:
    client, _ = api
    r = await client.post("/api/integrations/items/operations/create_item", json={"params": {"name": "post"}})
    assert r.status_code == 202, r.text
    approval_id = r.json()["approvalId"]
    decided = await client.post(f"/api/approvals/{approval_id}/approve")
    assert decided.status_code == 200, decided.text
    done = (await client.get(f"/api/approvals/{approval_id}")).json()
    assert done["status"] == "succeeded", done
    assert json.dumps(done).count('"name": "post"') >= 1


async def test_files_from_typescript(api: tuple[httpx.AsyncClient, Runtime]) -> None:
    client, _ = api
    r = await client.post("/api/integrations/items/operations/export_items", json={"params": {}})
    assert r.status_code == 200, r.text
    ref = r.json()["data"]
    assert ref["fileName"] == "items.json" and ref["contentType"].startswith("application/json")
    served = await client.get(httpx.URL(ref["url"]).path)
    assert served.status_code == 200
    assert served.json() == {"items": ITEMS}


async def test_errors_carry_the_connector_message(api: tuple[httpx.AsyncClient, Runtime]) -> None:
    client, _ = api
    await client.put("/api/integrations/items/credentials/other", json={"values": {"apiKey": "bad"}})
    r = await client.post(
        "/api/integrations/items/operations/list_items", json={"params": {}, "credentialId": "other"}
    )
    body = r.json()
    assert body["success"] is False, body
    assert body["error"]["code"] == "connector_error"
    assert "list failed (401)" in body["error"]["message"]


def _zip(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


async def test_upload_of_a_typescript_package(api: tuple[httpx.AsyncClient, Runtime]) -> None:
    client, _ = api
    package = _zip({"config.json": json.dumps(manifest()), "connector.ts": CONNECTOR})
    r = await client.post(
        "/api/settings/integrations",
        files={"file": ("items2.zip", package, "application/zip")},
        data={"slug": "items2", "dryRun": "true"},
    )
    assert r.status_code == 200, r.text
    broken = _zip(
        {"config.json": json.dumps(manifest()), "connector.ts": "const a = 1;\nimport fs from 'node:fs';\n"}
    )
    r = await client.post(
        "/api/settings/integrations",
        files={"file": ("items3.zip", broken, "application/zip")},
        data={"slug": "items3"},
    )
    assert r.status_code == 400, r.text
    assert "connector.ts line 2: import is not available" in r.text
