"""Key rotation reaches a running server (DESIGN §7, §11): ``bollard rotate-key`` on the
same data directory while a runtime serves; the next calls decrypt without a restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from bollard.platform import credentials as credentials_module
from bollard.platform.cli import main
from bollard.platform.credentials import CredentialStore, load_or_create_key_file
from bollard.platform.invocation import Invocation
from bollard.platform.runtime import Runtime
from bollard.platform.settings import Settings
from tests.support.api import app_client
from tests.support.integrations import rest_manifest, write_integration

CONNECTOR = """
def test_connection(ctx):
    return {"message": "key " + ctx.secrets.get("apiKey")[:3]}

def execute(ctx):
    return {"len": len(ctx.secrets.get("apiKey"))}
"""


def keyed(integrations_dir: Path) -> None:
    m = rest_manifest(authMethod="api_key", secretBindings=["apiKey"])
    write_integration(integrations_dir, "keyed", manifest=m, connector=CONNECTOR)


def key_file_settings(integrations_dir: Path, data_dir: Path) -> Settings:
    # no BOLLARD_SECRET_KEY: the key lives in <data_dir>/secret.key
    return Settings(integrations_dir=integrations_dir, data_dir=data_dir, secret_key=None, reload=False)


async def test_rotate_key_reaches_a_running_server(integrations_dir: Path, data_dir: Path) -> None:
    keyed(integrations_dir)
    settings = key_file_settings(integrations_dir, data_dir)
    replica = Runtime(settings)  # a second process on the same state database and key file
    async with app_client(settings) as (client, _rt):
        await replica.start()
        r = await client.put("/api/integrations/keyed/credentials", json={"values": {"apiKey": "abc-123"}})
        assert r.status_code == 200 and r.json()["status"] == "ready"
        old_key = (data_dir / "secret.key").read_text()

        # the CLI runs its own event loop, as in another process
        assert await asyncio.to_thread(main, ["rotate-key", "--data-dir", str(data_dir)]) == 0
        assert (data_dir / "secret.key").read_text() != old_key

        r = await client.post("/api/integrations/keyed/operations/echo", json={"params": {}})
        assert r.status_code == 200, r.text
        assert r.json()["data"] == {"len": 7}
        r = await client.post("/api/integrations/keyed/test")
        assert r.status_code == 200 and r.json()["ok"] is True, r.text
        r = await client.get("/api/integrations")
        assert r.json()["integrations"][0]["status"] == "ready"
        # a write after the rotation is readable with the new key alone (not the old one)
        r = await client.put("/api/integrations/keyed/credentials", json={"values": {"apiKey": "def-4567"}})
        assert r.status_code == 200
        out = await replica.execution.invoke(Invocation(slug="keyed", operation="echo", params={}))
        assert out.status == 200 and out.body["data"] == {"len": 8}, out.body
        await replica.stop()
    async with app_client(key_file_settings(integrations_dir, data_dir)) as (client, _rt):
        r = await client.post("/api/integrations/keyed/operations/echo", json={"params": {}})
        assert r.json()["data"] == {"len": 8}, r.text


async def test_an_unreadable_credential_is_reported_not_ready(integrations_dir: Path, data_dir: Path) -> None:
    """Under a key that cannot read the stored values (BOLLARD_SECRET_KEY changed, or a
    key file replaced by hand): the catalog says so, calls and Test connection answer JSON."""
    keyed(integrations_dir)
    first = Settings(
        integrations_dir=integrations_dir, data_dir=data_dir, secret_key="first-key", reload=False
    )
    async with app_client(first) as (client, _rt):
        r = await client.put("/api/integrations/keyed/credentials", json={"values": {"apiKey": "abc-123"}})
        assert r.json()["status"] == "ready"
    other = Settings(
        integrations_dir=integrations_dir,
        data_dir=data_dir,
        secret_key=Fernet.generate_key().decode(),
        reload=False,
    )
    async with app_client(other) as (client, _rt):
        item = (await client.get("/api/integrations")).json()["integrations"][0]
        assert item["status"] == "credentials_unreadable"
        assert "BOLLARD_SECRET_KEY" in item["error"] and "rotate-key" in item["error"]
        detail = (await client.get("/api/integrations/keyed")).json()
        assert detail["status"] == "credentials_unreadable"

        r = await client.post("/api/integrations/keyed/operations/echo", json={"params": {}})
        assert r.headers["content-type"].startswith("application/json")
        assert r.json()["error"]["code"] == "credentials_unreadable"

        r = await client.post("/api/integrations/keyed/test")
        assert r.headers["content-type"].startswith("application/json"), r.text
        body = r.json()
        assert body["ok"] is False
        assert body["steps"][0]["name"] == "credentials" and "cannot be decrypted" in body["message"]


async def test_a_bad_value_rereads_the_key_file_at_most_once_per_interval(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bollard.platform.store.db import create_engine, migrate

    engine = create_engine(f"sqlite+aiosqlite:///{data_dir / 'bollard.db'}")
    await migrate(engine)
    key_file = data_dir / "secret.key"
    writer = CredentialStore(engine, [Fernet.generate_key().decode()], cache_ttl_s=0)
    await writer.put("x", "default", {"apiKey": "v"})  # under a key the file never holds
    store = CredentialStore(engine, load_or_create_key_file(key_file), cache_ttl_s=0, key_file=key_file)
    reads: list[Path] = []
    real = credentials_module.read_key_file
    monkeypatch.setattr(credentials_module, "read_key_file", lambda p: reads.append(p) or real(p))
    monkeypatch.setattr(credentials_module, "KEY_RELOAD_INTERVAL_S", 3600.0)
    for _ in range(5):
        with pytest.raises(Exception, match="cannot be decrypted") as e:
            await store.get("x")
        assert getattr(e.value, "code", None) == "credentials_unreadable"
    assert reads == [key_file]  # the first failure re-read the file, the others did not
    await engine.dispose()
