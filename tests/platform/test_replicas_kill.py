"""SIGKILL of one of two real ``bollard serve`` replicas on one PostgreSQL (DESIGN §12):
no answered write loses its execution record, no approval runs twice or stays
``executing``, and the other replica carries on meanwhile."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.support.databases import (
    fresh_pg_state_database,
    pg_credentials,
    side_effect_table,
)
from tests.support.integrations import postgres_manifest, write_integration
from tests.support.standin import BollardServer, bollard

SIDE = "bollard_kill_side_effects"


def manifest() -> dict[str, Any]:
    tag = {"type": "object", "properties": {"tag": {"type": "string"}}, "required": ["tag"]}
    return postgres_manifest(
        "Side effects",
        [
            {  # a write that needs no approval: answered 200 at once
                "name": "record",
                "operationType": "write",
                "requiresApproval": False,
                "query": f"INSERT INTO {SIDE} (tag) VALUES (@tag)",
                "parametersSchema": tag,
            },
            {
                "name": "slow_record",
                "operationType": "write",
                "query": f"INSERT INTO {SIDE} (tag) VALUES (@tag); SELECT pg_sleep(30)",
                "parametersSchema": tag,
            },
            {"name": "read", "operationType": "read", "query": "SELECT 1 AS one"},
        ],
    )


@pytest.fixture
async def side() -> AsyncIterator[asyncpg.Connection]:
    async with side_effect_table(SIDE, "tag text not null") as conn:
        yield conn


@pytest.fixture
async def state_db() -> AsyncIterator[str]:
    async with fresh_pg_state_database() as url:
        yield url


def env_for(state_db: str) -> dict[str, str]:
    return {
        "BOLLARD_DATABASE_URL": state_db,
        "BOLLARD_SECRET_KEY": "shared-key",
        "BOLLARD_RELOAD": "false",
        "BOLLARD_SQL_ALLOW_PRIVILEGED_ROLES": "1",
        "BOLLARD_APPROVAL_LEASE_S": "2",
        "BOLLARD_APPROVAL_SWEEP_INTERVAL_S": "0.5",
    }


async def records_of(c: httpx.AsyncClient, url: str, operation: str) -> set[str]:
    tags: set[str] = set()
    offset = 0
    while True:
        r = await c.get(
            f"{url}/api/executions", params={"operation": operation, "limit": 500, "offset": offset}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        items = body["executions"]
        tags.update(i["params"]["tag"] for i in items if i.get("params") and "tag" in i["params"])
        offset += len(items)
        if not items:
            return tags


def two_replicas(tmp_path: Path, state_db: str) -> tuple[BollardServer, BollardServer, dict[str, str]]:
    """Two ``bollard serve`` (data directories ``a`` and ``b``) on ``state_db`` over the
    ``side`` integration, and the headers of an admin token."""
    integrations = tmp_path / "integrations"
    write_integration(integrations, "side", manifest=manifest(), connector=None)
    env = env_for(state_db)
    token = bollard("token", "create", "--role", "admin", "--data-dir", str(tmp_path / "a"), env=env).strip()
    a = BollardServer(integrations, tmp_path / "a", env)
    b = BollardServer(integrations, tmp_path / "b", env)
    return a, b, {"Authorization": f"Bearer {token}"}


async def test_killed_during_executions_loses_no_answered_write(tmp_path: Path, state_db: str, side) -> None:
    a, b, h = two_replicas(tmp_path, state_db)
    values = pg_credentials()
    answered: dict[str, int] = {}  # tag -> status of writes that got an answer
    b_statuses: list[int] = []
    try:
        async with httpx.AsyncClient(headers=h, timeout=30) as c:
            assert (
                await c.put(f"{a.url}/api/integrations/side/credentials", json={"values": values})
            ).is_success

            async def write(server: BollardServer, into: list[int] | None = None) -> None:
                tag = uuid.uuid4().hex
                try:
                    r = await c.post(
                        f"{server.url}/api/integrations/side/operations/record", json={"params": {"tag": tag}}
                    )
                except httpx.HTTPError:
                    return  # killed before it answered: nothing is promised
                answered[tag] = r.status_code
                if into is not None:
                    into.append(r.status_code)

            async def read(server: BollardServer, into: list[int] | None = None) -> None:
                try:
                    r = await c.post(
                        f"{server.url}/api/integrations/side/operations/read", json={"params": {}}
                    )
                except httpx.HTTPError:
                    return
                if into is not None:
                    into.append(r.status_code)

            async def load(server: BollardServer, n: int, into: list[int] | None = None) -> None:
                for i in range(n):
                    await asyncio.gather(*[(write if (i + k) % 2 else read)(server, into) for k in range(8)])

            on_a = asyncio.create_task(load(a, 40))
            on_b = asyncio.create_task(load(b, 30, b_statuses))
            await asyncio.sleep(1.0)
            a.kill()  # SIGKILL in the middle of A's executions
            await on_a
            await on_b
            assert b_statuses and set(b_statuses) == {200}, b_statuses  # B carried on
            a = BollardServer(tmp_path / "integrations", tmp_path / "a", env_for(state_db))  # restart
            recorded = await records_of(c, a.url, "record")
            ok = {t for t, s in answered.items() if s == 200}
            assert ok and ok <= recorded, f"{len(ok - recorded)} answered writes have no record"
            in_table = {
                r[0] for r in await side.fetch(f"SELECT tag FROM {SIDE} WHERE tag = ANY($1)", list(ok))
            }
            assert ok <= in_table
    finally:
        a.kill()
        b.stop()


async def test_killed_during_an_approvals_execution(tmp_path: Path, state_db: str, side) -> None:
    a, b, h = two_replicas(tmp_path, state_db)
    values = pg_credentials()
    tag = uuid.uuid4().hex
    try:
        async with httpx.AsyncClient(headers=h, timeout=60) as c:
            assert (
                await c.put(f"{b.url}/api/integrations/side/credentials", json={"values": values})
            ).is_success
            r = await c.post(
                f"{b.url}/api/integrations/side/operations/slow_record", json={"params": {"tag": tag}}
            )
            assert r.status_code == 202, r.text
            aid = r.json()["approvalId"]
            approving = asyncio.create_task(c.post(f"{a.url}/api/approvals/{aid}/approve"))
            for _ in range(100):
                await asyncio.sleep(0.1)
                if (await c.get(f"{b.url}/api/approvals/{aid}")).json()["status"] == "executing":
                    break
            await asyncio.sleep(0.5)  # the INSERT ran; pg_sleep holds the transaction open
            a.kill()
            with pytest.raises(httpx.HTTPError):
                await approving
            # B carries on, and fails the approval once A's lease (2 s) lapsed: not re-run
            got: dict[str, Any] = {}
            for _ in range(100):
                read = await c.post(f"{b.url}/api/integrations/side/operations/read", json={"params": {}})
                assert read.status_code == 200
                got = (await c.get(f"{b.url}/api/approvals/{aid}")).json()
                if got["status"] != "executing":
                    break
                await asyncio.sleep(0.1)
            assert got["status"] == "failed" and got["error"]["code"] == "interrupted", got
            a = BollardServer(tmp_path / "integrations", tmp_path / "a", env_for(state_db))  # restart
            again = await c.post(f"{a.url}/api/approvals/{aid}/approve")
            assert again.status_code == 409
            listing = (await c.get(f"{a.url}/api/approvals", params={"status": "executing"})).json()
            assert listing["approvals"] == []
        assert await side.fetchval(f"SELECT count(*) FROM {SIDE} WHERE tag = $1", tag) == 0  # rolled back
    finally:
        a.kill()
        b.stop()
