"""SQL hardening through the HTTP API (hardening issue items 13, 15, 21; DESIGN §5, §8):
privileged PostgreSQL roles are refused unless the operator opts in, a result cut by its
byte budget says so, and a failed statement's answer carries the SQLSTATE, not the
driver's text echoing the caller's parameters."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from bollard.platform.settings import Settings
from tests.support.api import app_client
from tests.support.databases import PG_URL, _check, credentials_from_url, unavailable
from tests.support.integrations import write_integration

REAL_PASSWORD = "real-Pa55word-42"


def pg_manifest() -> dict:
    return {
        "title": "PG",
        "type": "sql",
        "authMethod": "basic_auth",
        "secretBindings": ["username", "password"],
        "sqlConnectionConfig": {"engine": "postgres", "security": {"maxResultBytes": 1024 * 1024}},
        "sqlOperations": [
            {"name": "one", "query": "SELECT 1 AS one"},
            {
                "name": "as_number",
                "query": "SELECT CAST(@p AS integer) AS n",
                "parametersSchema": {"type": "object", "properties": {"p": {"type": "string"}}},
            },
            {
                "name": "big",
                "query": "SELECT repeat('x', 300 * 1024) AS big FROM generate_series(1, 100)",
            },
        ],
    }


async def _client(tmp_path: Path, allow: bool) -> AsyncIterator[httpx.AsyncClient]:
    if reason := await _check("postgres"):
        unavailable(reason)
    integrations = tmp_path / "integrations"
    write_integration(integrations, "pg", manifest=pg_manifest(), connector=None)
    settings = Settings(
        integrations_dir=integrations,
        data_dir=tmp_path / "data",
        secret_key="k",
        reload=False,
        sql_allow_privileged_roles=allow,
    )
    async with app_client(settings) as (client, _):
        # trust auth on the test server: the password is not needed, but it is the secret
        values = {k: str(v) for k, v in credentials_from_url(PG_URL).items()}
        values["password"] = REAL_PASSWORD
        r = await client.put("/api/integrations/pg/credentials", json={"values": values})
        assert r.status_code == 200, r.text
        yield client


@pytest.fixture
async def strict(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The host as shipped: no opt-in for privileged roles (the test user is a superuser)."""
    async for c in _client(tmp_path, allow=False):
        yield c


@pytest.fixture
async def opted_in(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for c in _client(tmp_path, allow=True):
        yield c


async def test_a_superuser_credential_is_refused_without_the_opt_in(strict: httpx.AsyncClient) -> None:
    r = await strict.post("/api/integrations/pg/operations/one", json={"params": {}})
    err = r.json()["error"]
    assert err["code"] == "config_error", r.text
    assert "superuser" in err["message"] and "CREATE ROLE" in err["message"]
    assert "BOLLARD_SQL_ALLOW_PRIVILEGED_ROLES" in err["message"]
    body = (await strict.post("/api/integrations/pg/test", json={})).json()
    assert body["ok"] is False
    assert [(s["name"], s["ok"]) for s in body["steps"]] == [
        ("credentials", True),
        ("connect", True),
        ("role", False),
    ]
    assert "CREATE ROLE" in body["steps"][-1]["message"]


async def test_the_opt_in_lets_a_superuser_connect(opted_in: httpx.AsyncClient) -> None:
    r = await opted_in.post("/api/integrations/pg/operations/one", json={"params": {}})
    assert r.status_code == 200, r.text
    assert r.json()["data"] == [{"one": 1}]


async def test_a_result_cut_by_bytes_says_so(opted_in: httpx.AsyncClient) -> None:
    r = await opted_in.post("/api/integrations/pg/operations/big", json={"params": {}})
    body = r.json()
    assert r.status_code == 200, r.text
    assert body["truncated"] is True and body["truncatedReason"] == "bytes"
    assert 1 <= body["count"] <= 4  # 1 MiB of 300 KiB rows
    assert len(r.content) < 2 * 1024 * 1024


async def test_errors_carry_the_sqlstate_not_the_parameters(
    opted_in: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    candidates = [f"guess-{i:04d}" for i in range(5000)]
    candidates[4321] = REAL_PASSWORD
    with caplog.at_level(logging.WARNING, logger="bollard.sql"):
        r = await opted_in.post(
            "/api/integrations/pg/operations/as_number", json={"params": {"p": " ".join(candidates)}}
        )
    assert r.status_code == 502, r.text
    err = r.json()["error"]
    assert err["code"] == "sql_error"
    assert "22P02" in err["message"] and err["details"]["sqlstate"] == "22P02"
    assert "guess-" not in r.text and "[REDACTED]" not in r.text and REAL_PASSWORD not in r.text
    # the full driver text went to the server log, redacted, on one line
    logged = [rec.getMessage() for rec in caplog.records if rec.name == "bollard.sql"]
    assert any("invalid input syntax" in line and "guess-0001" in line for line in logged), logged
    assert not any(REAL_PASSWORD in line or "\n" in line for line in logged)
