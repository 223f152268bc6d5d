"""API tokens: ``bollard token list | revoke``, ``/api/tokens`` (admin), revocation
through the per-process cache, ``last_used_at`` (DESIGN §8, §11)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bollard.platform import tokens
from bollard.platform.cli import main
from bollard.platform.settings import Settings
from bollard.platform.store.db import create_engine, migrate
from bollard.platform.store.tables import api_tokens
from tests.support.api import app_client


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_token_list_and_revoke_from_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = ["--data-dir", str(tmp_path / "d")]
    code, admin_token, _ = cli(capsys, "token", "create", "--role", "admin", "--name", "ops", *data)
    assert code == 0
    code, agent_token, _ = cli(capsys, "token", "create", "--role", "agent", "--name", "bot", *data)
    code, out, _ = cli(capsys, "token", "list", "--json", *data)
    assert code == 0
    rows = json.loads(out)
    assert [(r["role"], r["name"]) for r in rows] == [("admin", "ops"), ("agent", "bot")]
    assert set(rows[0]) == {"id", "name", "role", "createdAt", "lastUsedAt"}
    assert rows[0]["createdAt"].endswith("+00:00") and rows[0]["lastUsedAt"] is None
    code, table, _ = cli(capsys, "token", "list", *data)
    assert rows[1]["id"] in table and "never" in table and "LAST USED" in table
    for secret in (admin_token.strip(), agent_token.strip(), tokens.hash_token(agent_token.strip())):
        assert secret not in out and secret not in table

    code, _, err = cli(capsys, "token", "revoke", rows[1]["id"], *data)
    assert code == 0 and "revoked" in err
    code, out, _ = cli(capsys, "token", "list", "--json", *data)
    assert [r["name"] for r in json.loads(out)] == ["ops"]
    code, _, err = cli(capsys, "token", "revoke", rows[1]["id"], *data)
    assert code == 1 and "no token with id" in err


async def test_tokens_api_admin_only(tmp_path: Path) -> None:
    settings = Settings(
        integrations_dir=tmp_path / "i",
        data_dir=tmp_path / "d",
        secret_key="k",
        reload=False,
        cache_ttl_s=3600,
    )
    async with app_client(settings) as (client, rt):
        r = await client.post("/api/tokens", json={"role": "agent", "name": "bot"})
        assert r.status_code == 201
        created = r.json()
        agent = {"Authorization": f"Bearer {created['token']}"}
        assert created["role"] == "agent" and created["name"] == "bot" and created["token"].startswith("bol_")

        listed = await client.get("/api/tokens")
        assert listed.status_code == 200
        assert created["token"] not in listed.text and tokens.hash_token(created["token"]) not in listed.text
        assert "bot" in [t["name"] for t in listed.json()["tokens"]]
        assert all("token" not in t for t in listed.json()["tokens"])

        assert (await client.get("/api/integrations", headers=agent)).status_code == 200
        for method, url in (
            ("GET", "/api/tokens"),
            ("POST", "/api/tokens"),
            ("DELETE", f"/api/tokens/{created['id']}"),
        ):
            r = await client.request(
                method, url, headers=agent, json={"role": "admin"} if method == "POST" else None
            )
            assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden", (method, url)

        r = await client.post("/api/tokens", json={"role": "root"})
        assert r.status_code == 400
        r = await client.delete(f"/api/tokens/{created['id']}")
        assert r.status_code == 200 and r.json() == {"id": created["id"], "revoked": True}
        # revoked in this process: refused at once, although the cache TTL is an hour
        r = await client.get("/api/integrations", headers=agent)
        assert r.status_code == 401
        r = await client.delete(f"/api/tokens/{created['id']}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


async def test_a_token_revoked_elsewhere_stops_working_within_the_cache_ttl(tmp_path: Path) -> None:
    from bollard.platform.runtime import Runtime

    data = tmp_path / "d"
    ttl_s = 0.2
    rt = Runtime(
        Settings(
            integrations_dir=tmp_path / "i", data_dir=data, secret_key="k", reload=False, cache_ttl_s=ttl_s
        )
    )
    await rt.start()
    try:
        info, token = await tokens.new_token(rt.db, "agent", "bot")
        assert (await rt.tokens.authenticate(token)) is not None  # now cached
        # another process (the CLI) revokes it; the loop keeps running meanwhile
        proc = await asyncio.create_subprocess_exec(
            *[
                sys.executable,
                "-m",
                "bollard.platform.cli",
                "token",
                "revoke",
                info.id,
                "--data-dir",
                str(data),
            ],
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await asyncio.wait_for(proc.communicate(), 120)
        assert proc.returncode == 0, err
        await asyncio.sleep(ttl_s * 2)
        assert (await rt.tokens.authenticate(token)) is None
    finally:
        await rt.stop()


async def test_last_used_is_written_at_most_once_a_minute(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'state.db'}")
    await migrate(engine)
    try:
        info, token = await tokens.new_token(engine, "agent")
        cache = tokens.TokenCache(engine, ttl_s=0)  # no cache: every call looks the token up

        async def last_used() -> object:
            async with engine.connect() as conn:
                q = select(api_tokens.c.last_used_at).where(api_tokens.c.id == info.id)
                return (await conn.execute(q)).scalar_one()

        assert await last_used() is None
        assert await cache.authenticate(token) is not None
        first = await last_used()
        assert first is not None
        for _ in range(3):
            assert await cache.authenticate(token) is not None
        assert await last_used() == first  # no write per call
        assert (await tokens.list_tokens(engine))[0].to_json()["lastUsedAt"] is not None
    finally:
        await engine.dispose()


def test_a_token_created_through_the_api_works_on_a_real_server(tmp_path: Path) -> None:
    """The token created through the API works against a real server process."""
    from tests.support.standin import BollardServer

    server = BollardServer(tmp_path / "i", tmp_path / "d", {"BOLLARD_SECRET_KEY": "k"})
    try:
        admin = (tmp_path / "d" / "admin.token").read_text().strip()
        r = httpx.post(
            server.url + "/api/tokens", json={"role": "agent"}, headers={"Authorization": f"Bearer {admin}"}
        )
        assert r.status_code == 201
        agent = r.json()["token"]
        r = httpx.get(server.url + "/api/integrations", headers={"Authorization": f"Bearer {agent}"})
        assert r.status_code == 200
    finally:
        server.stop()
