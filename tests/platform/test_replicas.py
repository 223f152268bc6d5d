"""Two replicas on one PostgreSQL share limits, events and approvals (DESIGN §12).

Each test starts two runtimes (two apps, two engines, two LISTEN connections, two data
directories) on a fresh PostgreSQL database and one shared integrations directory, as
two ``bollard serve`` behind a load balancer would be; the SIGKILL tests with real
server processes are in ``test_replicas_kill.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from bollard.platform.approvals import events as approvals_events
from bollard.platform.events import Event
from bollard.platform.files.store import ORPHAN_GRACE_S, FileOwner
from bollard.platform.manifest import RateLimit
from bollard.platform.pg_events import PgEventBus
from bollard.platform.pg_ratelimit import PgLimiter
from bollard.platform.runtime import Runtime
from bollard.platform.settings import Settings
from bollard.platform.store.db import create_engine, migrate
from bollard.platform.store.tables import files
from tests.support.api import app_client
from tests.support.databases import PG_URL, fresh_pg_state_database, pg_credentials
from tests.support.integrations import postgres_manifest, rest_manifest, write_integration
from tests.support.standin import bollard

KEY_LENGTH = """
def execute(ctx):
    return {"keyLength": len(ctx.secrets.get("apiKey") or "")}
"""


def sql_manifest(**op: Any) -> dict[str, Any]:
    return postgres_manifest(
        "Limited",
        [
            {
                "name": "probe",
                "operationType": "read",
                "query": "SELECT pg_sleep(@s) AS slept",
                "parametersSchema": {
                    "type": "object",
                    "properties": {"s": {"type": "number"}},
                    "required": ["s"],
                },
                **op,
            }
        ],
    )


def replace_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` in one step (the watcher never sees a half-written file)."""
    tmp = path.parent.parent / f".{path.name}.tmp"
    tmp.write_text(text)
    os.replace(tmp, path)


def drain(queue: asyncio.Queue[Event]) -> None:
    while not queue.empty():
        queue.get_nowait()


@dataclass
class Replica:
    client: httpx.AsyncClient
    rt: Runtime

    async def call(self, slug: str, op: str, params: dict[str, Any]) -> httpx.Response:
        return await self.client.post(f"/api/integrations/{slug}/operations/{op}", json={"params": params})


@contextlib.asynccontextmanager
async def replicas(tmp_path: Path, **settings: Any) -> AsyncIterator[tuple[Replica, Replica]]:
    """Two replicas (``settings`` for both; ``reload_a``/``reload_b`` per replica, and
    ``only_b``: settings for B alone)."""
    integrations = tmp_path / "integrations"
    integrations.mkdir(exist_ok=True)
    reload_a = settings.pop("reload_a", False)
    reload_b = settings.pop("reload_b", False)
    only_b: dict[str, Any] = settings.pop("only_b", {})
    async with fresh_pg_state_database() as url, contextlib.AsyncExitStack() as stack:

        async def start(name: str, reload: bool, **extra: Any) -> Replica:
            s = Settings(
                integrations_dir=integrations,
                data_dir=tmp_path / name,
                database_url=url,
                secret_key="shared-secret",
                reload=reload,
                reload_debounce_ms=50,
                sql_allow_privileged_roles=True,  # the test user postgres is a superuser
                **{**settings, **extra},
            )
            client, rt = await stack.enter_async_context(app_client(s))
            assert isinstance(rt.events, PgEventBus) and rt.events.connected.is_set()
            return Replica(client, rt)

        a = await start("a", reload_a)
        b = await start("b", reload_b, **only_b)
        yield a, b


async def test_a_rate_limit_of_n_per_period_admits_n_across_both(tmp_path: Path) -> None:
    write_integration(
        tmp_path / "integrations",
        "limited",
        # 5 per 10 minutes: no call comes back within the test, however slow the machine
        sql_manifest(rateLimit={"requests": 5, "perSeconds": 600}),
        connector=None,
    )
    async with replicas(tmp_path) as (a, b):
        assert (
            await a.client.put("/api/integrations/limited/credentials", json={"values": pg_credentials()})
        ).is_success
        results = await asyncio.gather(*[(a, b)[i % 2].call("limited", "probe", {"s": 0}) for i in range(14)])
        codes = [r.status_code for r in results]
        assert codes.count(200) == 5 and codes.count(429) == 9, codes
        refused = next(r for r in results if r.status_code == 429)
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["Retry-After"]) <= 120  # one call per 120 s


async def test_max_concurrency_holds_across_both(tmp_path: Path) -> None:
    from sqlalchemy import text

    write_integration(tmp_path / "integrations", "limited", sql_manifest(maxConcurrency=2), connector=None)
    async with replicas(tmp_path) as (a, b):
        put = await b.client.put("/api/integrations/limited/credentials", json={"values": pg_credentials()})
        assert put.is_success
        holding = [asyncio.create_task(r.call("limited", "probe", {"s": 4})) for r in (a, b)]
        busy = text(
            "SELECT count(*) FROM bollard_slots WHERE expires > extract(epoch FROM clock_timestamp())"
        )
        for _ in range(200):  # both slots leased, one by each replica
            async with a.rt.db.connect() as conn:
                if (await conn.execute(busy)).scalar_one() == 2:
                    break
            await asyncio.sleep(0.05)
        refused = await asyncio.gather(*[(a, b)[i % 2].call("limited", "probe", {"s": 0}) for i in range(4)])
        assert [r.status_code for r in refused] == [429] * 4, [r.text for r in refused]
        assert {r.json()["error"]["code"] for r in refused} == {"too_many_concurrent"}
        assert [(await t).status_code for t in holding] == [200, 200]
        # the slots were given back: two more run
        again = await asyncio.gather(
            a.call("limited", "probe", {"s": 0}), b.call("limited", "probe", {"s": 0})
        )
        assert [r.status_code for r in again] == [200, 200]


async def test_a_dead_replicas_slots_expire_and_gcra_matches_the_local_rule(tmp_path: Path) -> None:
    async with fresh_pg_state_database() as url:
        engine = create_engine(url)
        try:
            await migrate(engine)
            dead = PgLimiter(engine, lease_ttl_s=0.5)
            alive = PgLimiter(engine, lease_ttl_s=0.5)
            held = await dead.acquire("x/op", 1)
            assert held is not None and held.slot == 0
            await dead.close()  # killed: it never releases nor renews
            assert await alive.acquire("x/op", 1) is None
            await asyncio.sleep(0.7)
            taken = await alive.acquire("x/op", 1)
            assert taken is not None and taken.slot == 0
            await alive.release(taken)
            # a lease that is renewed survives its ttl
            kept = await alive.acquire("y/op", 1)
            await asyncio.sleep(1.2)
            assert kept is not None and await dead.acquire("y/op", 1) is None
            await alive.release(kept)
            await alive.close()
            # burst 3, then one per 0.2 s
            limit = RateLimit(requests=5, per_seconds=1.0, burst=3)
            waits = [await alive.check_rate("z", limit) for _ in range(4)]
            assert waits[:3] == [0, 0, 0] and waits[3] == 1
        finally:
            await engine.dispose()


async def test_a_credential_changed_through_one_is_used_by_the_other_at_once(tmp_path: Path) -> None:
    manifest = rest_manifest(authMethod="api_key", secretBindings=["apiKey"])
    write_integration(tmp_path / "integrations", "keyed", manifest, connector=KEY_LENGTH)
    # a cache TTL of 10 minutes: only the credential event can explain what B sees
    async with replicas(tmp_path, cache_ttl_s=600) as (a, b):
        put = await a.client.put("/api/integrations/keyed/credentials", json={"values": {"apiKey": "abc"}})
        assert put.is_success, put.text
        first = await b.call("keyed", "echo", {})
        assert first.json()["data"] == {"keyLength": 3}, first.text  # now cached in B
        async with b.rt.events.subscribe("credential") as seen:
            put = await a.client.put(
                "/api/integrations/keyed/credentials", json={"values": {"apiKey": "abcdefg"}}
            )
            assert put.is_success
            event = await asyncio.wait_for(seen.get(), 10)
        assert event == Event("credential", {"slug": "keyed", "credentialId": "default"}, remote=True)
        after = await b.call("keyed", "echo", {})
        assert after.json()["data"] == {"keyLength": 7}, after.text
        # deleting it through B: A refuses the call at once
        assert (await b.client.delete("/api/integrations/keyed/credentials/default")).is_success
        for _ in range(100):
            r = await a.call("keyed", "echo", {})
            if r.status_code != 200:
                break
            await asyncio.sleep(0.05)
        assert r.json()["error"]["code"] == "needs_credentials"


async def test_a_token_revoked_on_one_is_refused_by_the_other_at_once(tmp_path: Path) -> None:
    async with replicas(tmp_path, cache_ttl_s=600) as (a, b):
        made = await a.client.post("/api/tokens", json={"role": "agent", "name": "x"})
        assert made.status_code in (200, 201), made.text
        token, token_id = made.json()["token"], made.json()["id"]
        h = {"Authorization": f"Bearer {token}"}
        assert (await b.client.get("/api/integrations", headers=h)).status_code == 200  # cached in B
        async with b.rt.events.subscribe("token") as seen:
            assert (await a.client.delete(f"/api/tokens/{token_id}")).is_success
            await asyncio.wait_for(seen.get(), 10)
        assert (await b.client.get("/api/integrations", headers=h)).status_code == 401


async def test_an_approval_decided_on_one_wakes_a_waiter_on_the_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the long poll's re-read fallback is pushed out of reach: only the event wakes it
    monkeypatch.setattr(approvals_events, "WAIT_POLL_S", 120.0)
    manifest = rest_manifest()
    manifest["operations"][0]["operationType"] = "write"
    write_integration(tmp_path / "integrations", "writer", manifest)
    async with replicas(tmp_path) as (a, b):
        held = await a.call("writer", "echo", {"text": "hi"})
        assert held.status_code == 202, held.text
        aid = held.json()["approvalId"]
        waiter = asyncio.create_task(b.client.get(f"/api/approvals/{aid}?wait=60", timeout=120))
        await asyncio.sleep(0.5)
        assert not waiter.done()
        approved = await a.client.post(f"/api/approvals/{aid}/approve")
        assert approved.status_code == 200, approved.text
        got = await asyncio.wait_for(waiter, 30)  # not the 60 s deadline
        assert got.json()["status"] == "succeeded"
        assert got.json()["result"]["data"] == {"operation": "echo", "params": {"text": "hi"}}


async def test_a_folder_edit_seen_by_one_is_a_registry_event_on_both(tmp_path: Path) -> None:
    root = tmp_path / "integrations"
    write_integration(root, "demo", rest_manifest())
    async with (
        replicas(tmp_path, reload_a=True) as (a, b),
        a.rt.events.subscribe("registry") as on_a,
        b.rt.events.subscribe("registry") as on_b,
    ):
        replace_file(root / "demo" / "config.json", json.dumps(rest_manifest(version=2)))
        ea = await asyncio.wait_for(on_a.get(), 20)
        eb = await asyncio.wait_for(on_b.get(), 20)
        new_hash = a.rt.registry.require_version("demo").content_hash
        assert ea.payload == eb.payload == {"slug": "demo", "contentHash": new_hash}
        assert b.rt.registry.require_version("demo").version == 2  # B has no watcher of its own
        detail = (await b.client.get("/api/integrations/demo")).json()
        assert detail["version"] == 2

        # A folder that keeps failing to load raises an event each time it is read: it
        # must not bounce between the replicas (A never reloads for B).
        replace_file(root / "demo" / "config.json", "{ not json")
        await asyncio.wait_for(on_a.get(), 20)
        await asyncio.wait_for(on_b.get(), 20)
        await asyncio.sleep(1.5)
        drain(on_a)
        drain(on_b)
        await asyncio.sleep(1.5)
        assert on_a.empty() and on_b.empty()
        assert a.rt.peers.reloads == 0 and b.rt.peers.reloads >= 2
        assert b.rt.registry.get("demo").errors  # type: ignore[union-attr]


async def test_the_listener_reconnects_and_resyncs(tmp_path: Path) -> None:
    import asyncpg

    async with replicas(tmp_path, cache_ttl_s=600) as (a, b):
        bus = b.rt.events
        assert isinstance(bus, PgEventBus)
        async with bus.subscribe("credential") as seen:
            pid = bus.listener_pid()
            assert pid is not None
            admin = await asyncpg.connect(PG_URL)
            try:  # the database drops B's listener connection
                killed = await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
            finally:
                await admin.close()
            assert killed
            got = await asyncio.wait_for(seen.get(), 20)
            assert got.topic == "resync"
        await asyncio.wait_for(bus.connected.wait(), 20)
        assert bus.reconnects >= 1
        # and events flow again
        manifest = rest_manifest(authMethod="api_key", secretBindings=["apiKey"])
        write_integration(tmp_path / "integrations", "keyed", manifest, connector=KEY_LENGTH)
        await a.rt.registry.reload_async("keyed")
        async with b.rt.events.subscribe("credential") as seen:
            await a.client.put("/api/integrations/keyed/credentials", json={"values": {"apiKey": "abc"}})
            assert (await asyncio.wait_for(seen.get(), 10)).remote


async def test_bollard_token_revoke_reaches_running_replicas_at_once(tmp_path: Path) -> None:
    async with replicas(tmp_path, cache_ttl_s=600) as (a, b):
        made = await a.client.post("/api/tokens", json={"role": "agent", "name": "cli"})
        token, token_id = made.json()["token"], made.json()["id"]
        h = {"Authorization": f"Bearer {token}"}
        assert (await b.client.get("/api/integrations", headers=h)).status_code == 200  # cached in B
        env = {"BOLLARD_DATABASE_URL": str(b.rt.settings.database_url), "BOLLARD_SECRET_KEY": "shared-secret"}
        async with b.rt.events.subscribe("token") as seen:
            await asyncio.to_thread(
                bollard, "token", "revoke", token_id, "--data-dir", str(tmp_path / "cli"), env=env
            )
            await asyncio.wait_for(seen.get(), 10)
        assert (await b.client.get("/api/integrations", headers=h)).status_code == 401
        assert (await a.client.get("/api/integrations", headers=h)).status_code == 401


async def test_bollard_rotate_key_reaches_running_replicas_at_once(tmp_path: Path) -> None:
    """Each re-encrypted credential is the credential event of a PUT: B drops its cached
    value at once (a TTL of 10 minutes otherwise) and says what it now finds, values it
    cannot read until it is restarted with the new key (README, CLI)."""
    manifest = rest_manifest(authMethod="api_key", secretBindings=["apiKey"])
    write_integration(tmp_path / "integrations", "keyed", manifest, connector=KEY_LENGTH)
    async with replicas(tmp_path, cache_ttl_s=600) as (a, b):
        put = await a.client.put("/api/integrations/keyed/credentials", json={"values": {"apiKey": "abc"}})
        assert put.is_success, put.text
        assert (await b.call("keyed", "echo", {})).json()["data"] == {"keyLength": 3}  # cached in B
        env = {"BOLLARD_DATABASE_URL": str(b.rt.settings.database_url), "BOLLARD_SECRET_KEY": "shared-secret"}
        async with b.rt.events.subscribe("credential") as seen:
            await asyncio.to_thread(
                bollard, "rotate-key", "--new-key", "new-secret", "--data-dir", str(tmp_path / "cli"), env=env
            )
            event = await asyncio.wait_for(seen.get(), 10)
        assert event == Event("credential", {"slug": "keyed", "credentialId": "default"}, remote=True)
        after = await b.call("keyed", "echo", {})
        assert after.json()["error"]["code"] == "credentials_unreadable", after.text


async def test_expired_files_leave_each_replicas_own_data_directory(tmp_path: Path) -> None:
    """The data directory is per replica (DESIGN §12): A's retention job deletes the
    expired rows once (and A's bytes); B, which runs no jobs, removes the bytes it stored
    in its own orphan sweep, and keeps a file still recorded and one still being saved."""
    owner = FileOwner("files", "store")
    # B runs no jobs: only its own sweep can remove its bytes
    async with replicas(tmp_path, file_sweep_interval_s=0.2, only_b={"jobs_worker": False}) as (a, b):

        async def save(replica: Replica, data: bytes) -> Path:
            ref = await replica.rt.files.save(data, file_name="f.txt", content_type="text/plain", owner=owner)
            return replica.rt.files.directory / ref["fileId"]

        on_a, on_b, recorded = await save(a, b"a"), await save(b, b"b"), await save(b, b"kept")
        saving = b.rt.files.directory / str(uuid.uuid4())  # bytes written, row not yet committed
        saving.write_bytes(b"in flight")
        long_ago = time.time() - 2 * ORPHAN_GRACE_S
        for path in (on_b, recorded):
            os.utime(path, (long_ago, long_ago))
        async with a.rt.db.begin() as conn:
            await conn.execute(
                update(files)
                .where(files.c.id.in_([on_a.name, on_b.name]))
                .values(expires_at=datetime.now(UTC) - timedelta(days=1))
            )
        for _ in range(300):
            if not on_a.exists() and not on_b.exists():
                break
            await asyncio.sleep(0.05)
        assert not on_a.exists() and not on_b.exists()
        assert recorded.exists() and saving.exists()
        assert await b.rt.files.get(recorded.name) is not None
