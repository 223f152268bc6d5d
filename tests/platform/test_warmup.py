"""Warm sandbox workers (performance issue 15; platform/warmup.py): one per integration
and credential after load and after credentials are set, within BOLLARD_WARM_WORKERS, so
the first call starts no worker."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bollard.platform.settings import Settings
from tests.support.api import app_client
from tests.support.integrations import rest_manifest, write_integration

CONNECTOR = "def execute(ctx):\n    return {'ok': True}\n"


async def until(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.02)


def groups(rt: Any, slug: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in rt.pool.stats().items() if k.startswith(f"{slug}:")}


def settings(tmp_path: Path, **kw: Any) -> Settings:
    return Settings(
        integrations_dir=tmp_path / "integrations",
        data_dir=tmp_path / "data",
        secret_key="k",
        reload=False,
        **kw,
    )


async def test_a_warm_worker_exists_after_load_and_the_first_call_starts_none(tmp_path: Path) -> None:
    write_integration(tmp_path / "integrations", "warm", manifest=rest_manifest(), connector=CONNECTOR)
    async with app_client(settings(tmp_path, worker_idle_timeout_s=0.3)) as (c, rt):
        rt.warmer.start()
        await until(lambda: any(g["idle"] == 1 for g in groups(rt, "warm").values()))
        await asyncio.sleep(0.8)  # past the idle timeout: the warm worker stays
        (stats,) = groups(rt, "warm").values()
        assert stats["idle"] == 1
        r = await c.post("/api/integrations/warm/operations/echo", json={"params": {}})
        assert r.status_code == 200, r.text
        (stats,) = groups(rt, "warm").values()
        assert stats["cold_starts"] == 0


async def test_the_cap_is_respected(tmp_path: Path) -> None:
    for slug in ("one", "two", "three"):
        write_integration(tmp_path / "integrations", slug, manifest=rest_manifest(), connector=CONNECTOR)
    async with app_client(settings(tmp_path, warm_workers=2)) as (_c, rt):
        rt.warmer.start()
        await until(lambda: len(rt.warmer.warmed()) == 2 and len(rt.pool.stats()) == 2)
        await until(lambda: all(g["starting"] == 0 for g in rt.pool.stats().values()))
        await asyncio.sleep(0.3)  # nothing else starts
        assert len(rt.pool.stats()) == 2
        assert sum(g["idle"] for g in rt.pool.stats().values()) == 2


async def test_none_when_the_setting_is_zero(tmp_path: Path) -> None:
    write_integration(tmp_path / "integrations", "cold", manifest=rest_manifest(), connector=CONNECTOR)
    async with app_client(settings(tmp_path, warm_workers=0)) as (_c, rt):
        rt.warmer.start()
        await asyncio.sleep(0.3)
        assert rt.pool.stats() == {}


async def test_a_worker_is_warmed_when_credentials_are_set(tmp_path: Path) -> None:
    manifest = rest_manifest(authMethod="bearer_token", secretBindings=["accessToken"])
    write_integration(tmp_path / "integrations", "keyed", manifest=manifest, connector=CONNECTOR)
    async with app_client(settings(tmp_path)) as (c, rt):
        rt.warmer.start()
        await asyncio.sleep(0.3)
        assert groups(rt, "keyed") == {}  # no credential yet: nothing to warm
        r = await c.put("/api/integrations/keyed/credentials/team-a", json={"values": {"accessToken": "t"}})
        assert r.status_code == 200, r.text
        await until(
            lambda: any(k.endswith("/team-a") and g["idle"] == 1 for k, g in groups(rt, "keyed").items())
        )
        r = await c.post(
            "/api/integrations/keyed/operations/echo", json={"params": {}, "credentialId": "team-a"}
        )
        assert r.status_code == 200, r.text
        (stats,) = groups(rt, "keyed").values()
        assert stats["cold_starts"] == 0


async def test_a_js_connector_is_warmed_in_its_own_worker_kind(tmp_path: Path) -> None:
    from tests.support.deno import require_deno

    require_deno()
    ts = (
        "const connector = {\n  operations: ['echo'],\n"
        "  execute: function (ctx: any) { return { ok: true }; },\n};\n"
    )
    write_integration(tmp_path / "integrations", "tsw", manifest=rest_manifest(), connector=None)
    (tmp_path / "integrations" / "tsw" / "connector.ts").write_text(ts)
    async with app_client(settings(tmp_path)) as (c, rt):
        rt.warmer.start()
        await until(lambda: any(g["idle"] == 1 for g in groups(rt, "tsw").values()), timeout_s=60)
        r = await c.post("/api/integrations/tsw/operations/echo", json={"params": {}})
        assert r.status_code == 200, r.text
        (stats,) = groups(rt, "tsw").values()
        assert stats["cold_starts"] == 0  # the warm worker was of the JS kind the call needs
