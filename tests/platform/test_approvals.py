"""Approvals run exactly once: concurrent approves, two replicas on one PostgreSQL state
database, expiry, and a server killed mid-execution (DESIGN §6, §12)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from bollard.platform.runtime import Runtime
from tests.support.api import Api
from tests.support.databases import (
    PG_URL,
    pg_credentials,
    side_effect_table,
    unavailable,
)
from tests.support.integrations import postgres_manifest, write_integration
from tests.support.standin import BollardServer, bollard

SIDE = "bollard_side_effects"


def side_effect_manifest(extra_sql: str = "") -> dict:
    return postgres_manifest(
        "Side effects",
        [
            {
                "name": "record",
                "operationType": "write",
                "query": f"INSERT INTO {SIDE} (tag) VALUES (@tag){extra_sql}",
                "parametersSchema": {
                    "type": "object",
                    "properties": {"tag": {"type": "string"}},
                    "required": ["tag"],
                },
            }
        ],
    )


@pytest.fixture
async def pg() -> AsyncIterator[asyncpg.Connection]:
    async with side_effect_table(SIDE, "tag text not null, at timestamptz default now()") as conn:
        yield conn


async def count(pg: asyncpg.Connection, tag: str) -> int:
    return int(await pg.fetchval(f"SELECT count(*) FROM {SIDE} WHERE tag = $1", tag))


async def test_fifty_concurrent_approvals_run_once(
    integrations_dir: Path, api: Api, runtime: Runtime, pg
) -> None:
    write_integration(integrations_dir, "side", manifest=side_effect_manifest(), connector=None)
    runtime.registry.reload("side")
    assert (
        await api.put("/api/integrations/side/credentials", json={"values": pg_credentials()})
    ).status_code == 200
    tag = uuid.uuid4().hex
    r = await api.post(
        "/api/integrations/side/operations/record", role="agent", json={"params": {"tag": tag}}
    )
    assert r.status_code == 202
    aid = r.json()["approvalId"]

    results = await asyncio.gather(*[api.post(f"/api/approvals/{aid}/approve") for _ in range(50)])
    codes = sorted(r.status_code for r in results)
    assert codes.count(200) == 1 and codes.count(409) == 49
    assert await count(pg, tag) == 1
    final = (await api.get(f"/api/approvals/{aid}")).json()
    assert final["status"] == "succeeded" and final["result"]["rowsAffected"] == 1


async def test_expired_approval_cannot_be_approved(integrations_dir: Path, data_dir: Path, pg) -> None:
    from bollard.platform import tokens
    from bollard.platform.api.app import create_app
    from bollard.platform.settings import Settings

    write_integration(integrations_dir, "side", manifest=side_effect_manifest(), connector=None)
    rt = Runtime(
        Settings(
            integrations_dir=integrations_dir,
            data_dir=data_dir,
            secret_key="k",
            reload=False,
            approval_ttl_s=1,
            sql_allow_privileged_roles=True,  # the test user postgres is a superuser
        )
    )
    app = create_app(runtime=rt)
    async with app.router.lifespan_context(app):
        token = await tokens.create_token(rt.db, "admin")
        h = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t", headers=h
        ) as c:
            await c.put("/api/integrations/side/credentials", json={"values": pg_credentials()})
            tag = uuid.uuid4().hex
            aid = (
                await c.post("/api/integrations/side/operations/record", json={"params": {"tag": tag}})
            ).json()["approvalId"]
            await asyncio.sleep(1.3)
            r = await c.post(f"/api/approvals/{aid}/approve")
            assert r.status_code == 409
            got = (await c.get(f"/api/approvals/{aid}")).json()
            assert got["status"] == "expired" and got["error"]["code"] == "approval_expired"
            assert await count(pg, tag) == 0


@pytest.fixture
async def state_db() -> AsyncIterator[str]:
    """A fresh PostgreSQL database for the shared state of several replicas."""
    name = f"bollard_state_{uuid.uuid4().hex[:8]}"
    try:
        admin = await asyncpg.connect(PG_URL, timeout=5)
    except Exception as e:  # pragma: no cover
        unavailable(f"PostgreSQL unreachable at {PG_URL}: {e}")
    await admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


async def test_two_replicas_share_one_state_database(tmp_path: Path, state_db: str, pg) -> None:
    integrations = tmp_path / "integrations"
    write_integration(integrations, "side", manifest=side_effect_manifest(), connector=None)
    env = {
        "BOLLARD_DATABASE_URL": state_db,
        "BOLLARD_SECRET_KEY": "shared-key",
        "BOLLARD_RELOAD": "false",
        "BOLLARD_SQL_ALLOW_PRIVILEGED_ROLES": "1",
    }
    token = bollard("token", "create", "--role", "admin", "--data-dir", str(tmp_path / "a"), env=env).strip()
    a = BollardServer(integrations, tmp_path / "a", env)
    b = BollardServer(integrations, tmp_path / "b", env)
    try:
        h = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(headers=h, timeout=30) as c:
            r = await c.put(f"{b.url}/api/integrations/side/credentials", json={"values": pg_credentials()})
            assert r.status_code == 200, r.text
            tag = uuid.uuid4().hex
            r = await c.post(
                f"{a.url}/api/integrations/side/operations/record", json={"params": {"tag": tag}}
            )
            assert r.status_code == 202, r.text
            aid = r.json()["approvalId"]
            results = await asyncio.gather(
                *[c.post(f"{(a if i % 2 else b).url}/api/approvals/{aid}/approve") for i in range(50)]
            )
            codes = [r.status_code for r in results]
            assert codes.count(200) == 1 and codes.count(409) == 49, codes
            assert await count(pg, tag) == 1
            for server in (a, b):
                assert (await c.get(f"{server.url}/api/approvals/{aid}")).json()["status"] == "succeeded"
    finally:
        a.stop()
        b.stop()


async def test_killed_while_executing_is_failed_not_rerun(tmp_path: Path, state_db: str, pg) -> None:
    integrations = tmp_path / "integrations"
    write_integration(
        integrations, "side", manifest=side_effect_manifest("; SELECT pg_sleep(20)"), connector=None
    )
    env = {
        "BOLLARD_DATABASE_URL": state_db,
        "BOLLARD_SECRET_KEY": "shared-key",
        "BOLLARD_RELOAD": "false",
        "BOLLARD_SQL_ALLOW_PRIVILEGED_ROLES": "1",
    }
    token = bollard("token", "create", "--role", "admin", "--data-dir", str(tmp_path / "a"), env=env).strip()
    h = {"Authorization": f"Bearer {token}"}
    a = BollardServer(integrations, tmp_path / "a", env)
    tag = uuid.uuid4().hex
    try:
        async with httpx.AsyncClient(headers=h, timeout=30) as c:
            await c.put(f"{a.url}/api/integrations/side/credentials", json={"values": pg_credentials()})
            aid = (
                await c.post(
                    f"{a.url}/api/integrations/side/operations/record", json={"params": {"tag": tag}}
                )
            ).json()["approvalId"]
            approving = asyncio.create_task(c.post(f"{a.url}/api/approvals/{aid}/approve"))
            for _ in range(100):
                await asyncio.sleep(0.1)
                if (await c.get(f"{a.url}/api/approvals/{aid}")).json()["status"] == "executing":
                    break
            a.kill()
            with pytest.raises(httpx.HTTPError):
                await approving
    finally:
        a.kill()
    # A restarted server knows no execution lasts longer than its ceilings (1 s here).
    restart_env = {
        **env,
        "BOLLARD_MAX_WALL_TIME_MS": "1000",
        "BOLLARD_MAX_QUERY_TIMEOUT_MS": "1000",
        "BOLLARD_APPROVAL_STALE_MARGIN_S": "0",
    }
    await asyncio.sleep(1.2)
    b = BollardServer(integrations, tmp_path / "b", restart_env)
    try:
        async with httpx.AsyncClient(headers=h, timeout=30) as c:
            got = (await c.get(f"{b.url}/api/approvals/{aid}")).json()
            assert got["status"] == "failed", got
            assert got["error"]["code"] == "interrupted" and "not re-run" in got["error"]["message"]
            r = await c.post(f"{b.url}/api/approvals/{aid}/approve")
            assert r.status_code == 409
        assert await count(pg, tag) == 0  # the killed transaction never committed, nothing re-ran
    finally:
        b.stop()
