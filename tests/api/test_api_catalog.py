"""The catalog API: auth and roles, list/detail/icon, credentials, schema, health, errors."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from pathlib import Path

import httpx
import pytest

from bollard.platform import tokens
from bollard.platform.api.app import create_app
from bollard.platform.runtime import Runtime
from bollard.platform.settings import Settings
from tests.support.api import Api
from tests.support.integrations import rest_manifest, write_integration

ICON = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 8 8"><rect width="8" height="8"/></svg>'


@pytest.fixture
def folders(integrations_dir: Path) -> Path:
    write_integration(integrations_dir, "echo", extra={"icon.svg": ICON})
    write_integration(
        integrations_dir,
        "keyed",
        manifest=rest_manifest(title="Keyed", authMethod="api_key", secretBindings=["apiKey", "region"]),
    )
    write_integration(integrations_dir, "broken", manifest="[1, 2")
    return integrations_dir


async def test_requires_a_bearer_token(folders: Path, api: Api) -> None:
    r = await api.client.get("/api/integrations")
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    r = await api.client.get("/api/integrations", headers={"Authorization": "Bearer bol_nope"})
    assert r.status_code == 401
    assert (await api.client.get("/healthz")).status_code == 200


async def test_catalog_lists_status_per_integration(folders: Path, api: Api) -> None:
    r = await api.get("/api/integrations", role="agent")
    assert r.status_code == 200
    items = {i["slug"]: i for i in r.json()["integrations"]}
    assert items["echo"]["status"] == "ready"
    assert items["echo"]["operations"] == [
        {"name": "echo", "title": "Echo", "operationType": "read", "requiresApproval": False}
    ]
    assert items["keyed"]["status"] == "needs_credentials"
    assert items["keyed"]["missingCredentials"] == ["apiKey", "region"]
    assert items["broken"]["status"] == "error"
    assert "invalid JSON" in items["broken"]["error"]


async def test_detail_and_unknown(folders: Path, api: Api) -> None:
    r = await api.get("/api/integrations/keyed")
    body = r.json()
    assert body["secretBindings"] == [
        {"key": "apiKey", "set": False, "required": True},
        {"key": "region", "set": False, "required": True},
    ]
    assert body["operations"][0]["parametersSchema"]["properties"] == {"text": {"type": "string"}}
    r = await api.get("/api/integrations/nope")
    assert r.status_code == 404
    assert r.json() == {
        "error": {
            "code": "unknown_integration",
            "message": "no integration 'nope' is installed; GET /api/integrations lists the installed ones",
        }
    }


async def test_icon_is_served_with_a_restrictive_csp(folders: Path, api: Api) -> None:
    r = await api.get("/api/integrations/echo/icon")
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/svg+xml"
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert r.text == ICON
    assert (await api.get("/api/integrations/keyed/icon")).status_code == 404


async def test_credentials_are_write_only_and_checked(folders: Path, api: Api, runtime: Runtime) -> None:
    secret = "sk-live-VERY-SECRET-123"
    r = await api.put("/api/integrations/keyed/credentials", json={"values": {"apiKey": secret}})
    assert r.status_code == 200, r.text
    assert r.json()["keys"] == ["apiKey"] and r.json()["status"] == "needs_credentials"
    assert secret not in r.text

    r = await api.put("/api/integrations/keyed/credentials", json={"values": {"region": "eu"}})
    assert r.json()["status"] == "ready" and r.json()["keys"] == ["apiKey", "region"]

    detail = await api.get("/api/integrations/keyed")
    assert secret not in detail.text
    assert {"key": "apiKey", "set": True, "required": True} in detail.json()["secretBindings"]

    # stored encrypted: the raw ciphertext in the state database does not hold the value
    from sqlalchemy import select

    from bollard.platform.store.tables import credentials

    async with runtime.db.connect() as conn:
        raw = (await conn.execute(select(credentials.c.ciphertext))).scalar_one()
    assert secret.encode() not in raw
    assert (await runtime.credentials.get("keyed"))["apiKey"] == secret

    # unknown keys are refused with the allowed list; nothing is written
    r = await api.put("/api/integrations/keyed/credentials/tenant-b", json={"values": {"password": "x"}})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_params"
    assert (
        "values.password" in r.json()["error"]["message"] and "apiKey, region" in r.json()["error"]["message"]
    )
    assert await runtime.credentials.get("keyed", "tenant-b") is None

    # another credential id, then delete it
    r = await api.put("/api/integrations/keyed/credentials/tenant-b", json={"values": {"apiKey": "b"}})
    assert r.status_code == 200 and r.json()["credentialId"] == "tenant-b"
    assert (await api.delete("/api/integrations/keyed/credentials/tenant-b")).status_code == 200
    assert (await api.delete("/api/integrations/keyed/credentials/tenant-b")).status_code == 404

    # agents cannot set credentials
    r = await api.put("/api/integrations/keyed/credentials", role="agent", json={"values": {"apiKey": "z"}})
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"


async def test_malformed_credential_body(folders: Path, api: Api) -> None:
    r = await api.put("/api/integrations/keyed/credentials", json={"nope": 1})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_request"
    assert "values" in r.json()["error"]["message"]
    r = await api.put("/api/integrations/keyed/credentials/bad id!", json={"values": {"apiKey": "x"}})
    assert r.status_code == 400 and "credentialId" in r.json()["error"]["message"]


async def test_schema_and_health(folders: Path, api: Api) -> None:
    schema = (await api.client.get("/api/schema/config.json")).json()
    assert schema["properties"]["authMethod"]["enum"] == [
        "api_key",
        "bearer_token",
        "basic_auth",
        "oauth2",
        "none",
    ]
    health = (await api.client.get("/healthz")).json()
    assert health["status"] == "ok" and health["integrations"] == 3 and health["loadErrors"] == 1
    assert "sandbox" in health
    assert (await api.client.get("/openapi.json")).status_code == 200


async def test_catalog_follows_folder_changes_live(integrations_dir: Path, data_dir: Path) -> None:
    """Create, edit, break and delete a folder while the server runs (real watcher)."""
    rt = Runtime(
        Settings(integrations_dir=integrations_dir, data_dir=data_dir, secret_key="k", reload_debounce_ms=50)
    )
    app = create_app(runtime=rt)
    async with app.router.lifespan_context(app):
        token = await tokens.create_token(rt.db, "agent")
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:

            async def catalog() -> dict[str, dict]:
                r = await c.get("/api/integrations", headers=headers)
                return {i["slug"]: i for i in r.json()["integrations"]}

            async def until(pred) -> float:
                start = time.monotonic()
                while time.monotonic() - start < 10:
                    if pred(await catalog()):
                        return time.monotonic() - start
                    await asyncio.sleep(0.02)
                raise AssertionError("catalog did not change")

            await asyncio.sleep(0.3)
            latencies = []
            write_integration(integrations_dir, "live")
            latencies.append(await until(lambda c: c.get("live", {}).get("status") == "ready"))
            (integrations_dir / "live" / "config.json").write_text(json.dumps(rest_manifest(title="Edited")))
            latencies.append(await until(lambda c: c["live"]["title"] == "Edited"))
            (integrations_dir / "live" / "config.json").write_text(
                json.dumps(rest_manifest(authMethod="magic"))
            )
            latencies.append(await until(lambda c: c["live"]["status"] == "error"))
            assert "authMethod" in (await catalog())["live"]["error"]
            assert (await catalog())["live"]["title"] == "Edited"  # last good version still serving
            shutil.rmtree(integrations_dir / "live")
            latencies.append(await until(lambda c: "live" not in c))
            print("catalog reload latencies (s):", [round(x, 3) for x in latencies])


@pytest.mark.parametrize(
    ("manifest", "fields"),
    [
        (rest_manifest(), []),
        (rest_manifest(authMethod="api_key", secretBindings=["apiKey"]), [("apiKey", True, True, "user")]),
        (
            rest_manifest(authMethod="basic_auth", secretBindings=["username", "password"]),
            [("username", True, False, "user"), ("password", True, True, "user")],
        ),
        (
            rest_manifest(
                authMethod="oauth2",
                secretBindings=["accessToken"],
                oauth2Config={
                    "authorizationUrl": "https://a.example/auth",
                    "tokenUrl": "https://a.example/token",
                },
            ),
            [
                ("clientId", True, False, "user"),
                ("clientSecret", True, True, "user"),
                ("accessToken", True, True, "oauth2"),
            ],
        ),
    ],
)
async def test_each_auth_method_asks_for_exactly_its_fields(
    integrations_dir: Path, runtime: Runtime, api: Api, manifest: dict, fields: list
) -> None:
    write_integration(integrations_dir, "auth", manifest=manifest)
    runtime.registry.load_all()
    got = (await api.get("/api/integrations/auth")).json()["credentialFields"]
    assert [(f["key"], f["required"], f["secret"], f["source"]) for f in got] == fields


async def test_sql_fields(integrations_dir: Path, runtime: Runtime, api: Api) -> None:
    write_integration(
        integrations_dir,
        "db",
        connector=None,
        manifest={
            "title": "DB",
            "type": "sql",
            "authMethod": "basic_auth",
            "secretBindings": ["username", "password"],
            "sqlConnectionConfig": {"engine": "mysql"},
            "sqlOperations": [{"name": "one", "query": "SELECT 1"}],
        },
    )
    runtime.registry.load_all()
    got = {
        f["key"]: f["required"] for f in (await api.get("/api/integrations/db")).json()["credentialFields"]
    }
    assert got["server"] and got["database"] and got["username"] and got["password"]
    assert got["port"] is False and got["trustServerCertificate"] is False
