"""An empty value in ``PUT …/credentials`` (DESIGN §7): a SQL connection's ``password``
may be empty (trust, peer or certificate auth); for every other key empty means unset."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import make_url

from bollard.platform.runtime import Runtime
from tests.support.api import Api
from tests.support.databases import PG_URL, _check, unavailable
from tests.support.integrations import postgres_manifest, rest_manifest, write_integration


def pg_manifest() -> dict:
    return postgres_manifest(
        "PG without a password",
        [{"name": "whoami", "query": "SELECT current_user AS who, 1 + 1 AS two"}],
        secret_bindings=("username", "password"),
    )


async def test_sql_integration_with_an_empty_password_is_ready_and_runs(
    integrations_dir: Path, api: Api, runtime: Runtime
) -> None:
    reason = await _check("postgres")
    if reason:
        unavailable(reason)
    u = make_url(PG_URL)
    if u.password:
        unavailable("BOLLARD_TEST_PG_URL has a password; this test needs a trust-auth server")
    write_integration(integrations_dir, "pgtrust", manifest=pg_manifest(), connector=None)
    runtime.registry.reload("pgtrust")
    values = {
        "server": u.host or "127.0.0.1",
        "port": str(u.port or 5432),
        "database": u.database or "test",
        "username": u.username or "postgres",
        "password": "",
    }
    r = await api.put("/api/integrations/pgtrust/credentials", json={"values": values})
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ready", r.text
    assert "password" in r.json()["keys"] and r.json()["missingCredentials"] == []
    item = (await api.get("/api/integrations/pgtrust")).json()
    assert item["status"] == "ready"
    assert {"key": "password", "set": True, "required": True} in item["secretBindings"]

    r = await api.post("/api/integrations/pgtrust/operations/whoami", json={"params": {}})
    assert r.status_code == 200, r.text
    assert r.json()["data"] == [{"who": values["username"], "two": 2}]
    r = await api.post("/api/integrations/pgtrust/test")
    assert r.json()["ok"] is True, r.text


async def test_an_empty_value_still_unsets_other_keys(
    integrations_dir: Path, api: Api, runtime: Runtime
) -> None:
    m = rest_manifest(authMethod="api_key", secretBindings=["apiKey", "password"])
    write_integration(integrations_dir, "restkeyed", manifest=m)
    runtime.registry.reload("restkeyed")
    r = await api.put(
        "/api/integrations/restkeyed/credentials", json={"values": {"apiKey": "k-123456", "password": "pw"}}
    )
    assert r.json()["status"] == "ready"
    # a REST integration's password is an ordinary secret binding: empty removes it
    r = await api.put("/api/integrations/restkeyed/credentials", json={"values": {"password": ""}})
    assert r.json()["keys"] == ["apiKey"] and r.json()["status"] == "needs_credentials"
    assert r.json()["missingCredentials"] == ["password"]
