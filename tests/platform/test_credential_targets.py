"""Stored secrets never follow a changed connection target (issue 9, item 20; DESIGN §5, §7).

A fake PostgreSQL server on 127.0.0.1 asks every client for cleartext password
authentication and records what it receives. Pointing Test connection's unsaved values,
or a credentials PUT, at it (a new ``port``) must never hand it the stored password: the
caller has to enter the secrets again for a new target.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bollard.platform.runtime import Runtime
from tests.support.api import Api
from tests.support.databases import pg_credentials
from tests.support.integrations import postgres_manifest, rest_manifest, write_integration

STORED_PASSWORD = "St0red-Pg-Passw0rd-xyz"
SSL_REQUEST, GSS_REQUEST, PROTOCOL_3 = 80877103, 80877104, 196608


class FakePostgres:
    """Speaks the PostgreSQL startup protocol far enough to ask for a cleartext password."""

    def __init__(self) -> None:
        self.passwords: list[str] = []
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:  # SSLRequest / GSSENCRequest first, then the StartupMessage
                length, code = struct.unpack("!ii", await reader.readexactly(8))
                await reader.readexactly(length - 8)
                if code in (SSL_REQUEST, GSS_REQUEST):
                    writer.write(b"N")
                    await writer.drain()
                    continue
                if code == PROTOCOL_3:
                    break
                return
            writer.write(b"R" + struct.pack("!ii", 8, 3))  # AuthenticationCleartextPassword
            await writer.drain()
            kind = await reader.readexactly(1)
            (length,) = struct.unpack("!i", await reader.readexactly(4))
            body = await reader.readexactly(length - 4)
            if kind == b"p":
                self.passwords.append(body.rstrip(b"\0").decode())
            fields = b"SFATAL\0C28P01\0Mpassword authentication failed\0\0"
            writer.write(b"E" + struct.pack("!i", len(fields) + 4) + fields)
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def fake_pg() -> AsyncIterator[FakePostgres]:
    fake = FakePostgres()
    fake.server = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    fake.port = fake.server.sockets[0].getsockname()[1]
    yield fake
    fake.server.close()
    await fake.server.wait_closed()


def pg_manifest() -> dict:
    return postgres_manifest("PG", [{"name": "one", "query": "SELECT 1 AS one"}])


@pytest.fixture
async def pg(integrations_dir: Path, runtime: Runtime, api: Api) -> dict[str, str]:
    """A PostgreSQL integration whose stored credential carries a password (trust auth
    ignores it on the real server)."""
    write_integration(integrations_dir, "pg", manifest=pg_manifest(), connector=None)
    runtime.registry.load_all()
    good = pg_credentials()
    stored = {**good, "password": STORED_PASSWORD}
    r = await api.put("/api/integrations/pg/credentials", json={"values": stored})
    assert r.status_code == 200, r.text
    return stored


async def test_unsaved_port_does_not_carry_the_stored_password(
    api: Api, pg: dict, fake_pg: FakePostgres
) -> None:
    body = (await api.post("/api/integrations/pg/test", json={"values": {"port": str(fake_pg.port)}})).json()
    assert fake_pg.passwords == []  # the stored password never reached the new target
    assert body["ok"] is False
    step = body["steps"][0]
    assert step["name"] == "credentials" and step["ok"] is False
    assert "password" in step["message"] and "port" in step["message"]
    # the same target with the secret entered again is tested (and that secret is what arrives)
    body = (
        await api.post(
            "/api/integrations/pg/test",
            json={"values": {"port": str(fake_pg.port), "password": "typed-again"}},
        )
    ).json()
    assert body["ok"] is False and fake_pg.passwords == ["typed-again"]
    # unchanged target values still test with the stored secret
    body = (await api.post("/api/integrations/pg/test", json={"values": {"server": pg["server"]}})).json()
    assert body["ok"] is True, body


@pytest.mark.parametrize("key", ["server", "port", "database", "username", "sslMode"])
async def test_put_changing_the_target_without_the_secrets_is_refused(
    api: Api, pg: dict, fake_pg: FakePostgres, key: str
) -> None:
    value = {"server": "127.0.0.1", "port": str(fake_pg.port), "database": "other", "username": "mallory",
             "sslMode": "disable"}[key]  # fmt: skip
    if key == "server":
        value = "localhost" if pg["server"] != "localhost" else "127.0.0.1"
    r = await api.put("/api/integrations/pg/credentials", json={"values": {key: value}})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["code"] == "invalid_params"
    assert err["details"] == {"changed": [key], "reenter": ["password"]}
    assert STORED_PASSWORD not in r.text
    # nothing was changed: Test connection still reaches the real server with the stored values
    body = (await api.post("/api/integrations/pg/test")).json()
    assert body["ok"] is True, body
    assert fake_pg.passwords == []


async def test_put_new_target_with_the_secret_entered_again(
    api: Api, pg: dict, fake_pg: FakePostgres
) -> None:
    r = await api.put(
        "/api/integrations/pg/credentials", json={"values": {"port": str(fake_pg.port), "password": "new-pw"}}
    )
    assert r.status_code == 200, r.text
    body = (await api.post("/api/integrations/pg/test")).json()
    assert body["ok"] is False and fake_pg.passwords == ["new-pw"]
    # an empty password is a value for SQL: entering "" again is allowed too
    r = await api.put("/api/integrations/pg/credentials", json={"values": {"port": "5999", "password": ""}})
    assert r.status_code == 200, r.text


async def test_rest_base_url_change_drops_stored_tokens(
    integrations_dir: Path, runtime: Runtime, api: Api
) -> None:
    m = rest_manifest(authMethod="api_key", secretBindings=["shopDomain", "accessToken"])
    write_integration(integrations_dir, "shop", manifest=m)
    runtime.registry.load_all()
    stored = {"shopDomain": "good.myshopify.com", "accessToken": "shpat-stored-token-123"}
    assert (await api.put("/api/integrations/shop/credentials", json={"values": stored})).status_code == 200
    body = (
        await api.post("/api/integrations/shop/test", json={"values": {"shopDomain": "evil.example"}})
    ).json()
    assert body["ok"] is False and body["steps"][0]["name"] == "credentials"
    assert "accessToken" in body["message"] and "shopDomain" in body["message"]
    r = await api.put("/api/integrations/shop/credentials", json={"values": {"shopDomain": "evil.example"}})
    assert r.status_code == 400 and r.json()["error"]["details"] == {
        "changed": ["shopDomain"], "reenter": ["accessToken"]
    }  # fmt: skip
    r = await api.put(
        "/api/integrations/shop/credentials",
        json={"values": {"shopDomain": "new.example", "accessToken": "t2"}},
    )
    assert r.status_code == 200, r.text
