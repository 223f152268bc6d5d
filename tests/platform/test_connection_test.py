"""Test connection: the step report for REST (stand-in server) and SQL (sqlite, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bollard.platform.runtime import Runtime
from tests.support.api import Api
from tests.support.databases import pg_credentials
from tests.support.integrations import postgres_manifest, rest_manifest, write_integration
from tests.support.standin import ServerThread

GOOD = "good-token-123456"


async def user(request: Request) -> Response:
    if request.headers.get("authorization") != f"Bearer {GOOD}":
        return JSONResponse({"message": "Bad credentials"}, status_code=401)
    return JSONResponse({"login": "octo"})


@pytest.fixture(scope="module")
def standin() -> Iterator[ServerThread]:
    with ServerThread(Starlette(routes=[Route("/user", user)])) as s:
        yield s


def connector(base: str, with_test: bool = True) -> str:
    test = (
        f'''
def test_connection(ctx):
    r = ctx.http.get("{base}/user", headers={{"Authorization": "Bearer " + ctx.secrets.get("accessToken")}})
    if r.status == 401:
        raise Exception("The service rejected the token. Create a new one under Settings > Tokens.")
    return {{"message": "connected as " + r.body["login"]}}
'''
        if with_test
        else ""
    )
    return test + "\ndef execute(ctx):\n    return 1\n"


@pytest.fixture
async def rest(integrations_dir: Path, runtime: Runtime, standin: ServerThread) -> None:
    m = rest_manifest(authMethod="bearer_token", secretBindings=["accessToken"], allowedHosts=[standin.url])
    write_integration(integrations_dir, "svc", manifest=m, connector=connector(standin.url))
    write_integration(
        integrations_dir, "untestable", manifest=m, connector=connector(standin.url, with_test=False)
    )
    m2 = rest_manifest(
        authMethod="bearer_token", secretBindings=["accessToken"], allowedHosts=["does-not-exist.invalid"]
    )
    write_integration(
        integrations_dir, "nowhere", manifest=m2, connector=connector("https://does-not-exist.invalid")
    )
    runtime.settings.allow_private_egress = True
    runtime.registry.load_all()


async def test_rest_success_and_unsaved_values(rest: None, api: Api) -> None:
    r = await api.post("/api/integrations/svc/test")
    body = r.json()
    assert body["ok"] is False and body["steps"][0]["name"] == "credentials"
    assert "accessToken" in body["message"]

    r = await api.post("/api/integrations/svc/test", json={"values": {"accessToken": GOOD}})
    body = r.json()
    assert body["ok"] is True, body
    assert [s["name"] for s in body["steps"]] == ["credentials", "hosts", "authenticate"]
    assert body["message"] == "connected as octo"
    assert all(isinstance(s["durationMs"], float | int) for s in body["steps"])
    # unsaved values were not stored
    assert (await api.get("/api/integrations/svc")).json()["status"] == "needs_credentials"


async def test_rest_failure_names_the_step_and_carries_the_message(rest: None, api: Api) -> None:
    await api.put("/api/integrations/svc/credentials", json={"values": {"accessToken": "wrong-token-999"}})
    body = (await api.post("/api/integrations/svc/test")).json()
    assert body["ok"] is False
    assert body["steps"][-1]["name"] == "authenticate" and body["steps"][-1]["ok"] is False
    assert body["message"] == "The service rejected the token. Create a new one under Settings > Tokens."
    assert "wrong-token-999" not in str(body)


async def test_rest_without_test_connection_says_so(rest: None, api: Api) -> None:
    body = (
        await api.post("/api/integrations/untestable/test", json={"values": {"accessToken": GOOD}})
    ).json()
    assert body["ok"] is False and "defines no test_connection" in body["message"]


async def test_rest_host_that_does_not_resolve(rest: None, api: Api) -> None:
    body = (await api.post("/api/integrations/nowhere/test", json={"values": {"accessToken": GOOD}})).json()
    assert body["ok"] is False
    assert body["steps"][-1]["name"] == "hosts" and "does-not-exist.invalid" in body["message"]


async def test_agent_cannot_test(rest: None, api: Api) -> None:
    assert (await api.post("/api/integrations/svc/test", role="agent")).status_code == 403


def pg_manifest() -> dict:
    return postgres_manifest("PG", [{"name": "one", "query": "SELECT 1 AS one"}])


async def test_sql_success_and_failing_connect(integrations_dir: Path, runtime: Runtime, api: Api) -> None:
    write_integration(integrations_dir, "pg", manifest=pg_manifest(), connector=None)
    runtime.registry.load_all()
    good = pg_credentials()
    body = (await api.post("/api/integrations/pg/test", json={"values": good})).json()
    assert body["ok"] is True, body
    assert [s["name"] for s in body["steps"]] == ["credentials", "connect", "query"]

    bad = {**good, "database": "no_such_database_here", "password": "Pa55-very-secret"}
    body = (await api.post("/api/integrations/pg/test", json={"values": bad})).json()
    assert body["ok"] is False
    failed = next(s for s in body["steps"] if not s["ok"])
    assert failed["name"] == "connect" and "no_such_database_here" in failed["message"]
    assert "Pa55-very-secret" not in str(body)


def test_cli_test_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bollard.platform.cli import main

    write_integration(tmp_path / "i", "echo")
    code = main(["test", "echo", "--integrations", str(tmp_path / "i"), "--data-dir", str(tmp_path / "d")])
    out = capsys.readouterr().out
    assert code == 1 and "✓ credentials" in out and "defines no test_connection" in out
