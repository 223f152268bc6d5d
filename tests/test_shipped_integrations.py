"""The shipped integrations end to end: their real connectors and queries, with the REST
APIs stood in for by a local server (only ``BASE`` and ``allowedHosts`` are pointed at it)."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bollard.platform.cli import main
from tests.support.api import app_client, local_settings
from tests.support.paths import SHIPPED
from tests.support.standin import ServerThread

TOKEN = "ghp_standin_token_0123456789"
SWISS = {
    "name": {"common": "Switzerland", "official": "Swiss Confederation"},
    "cca2": "CH",
    "cca3": "CHE",
    "capital": ["Bern"],
    "population": 8654622,
    "region": "Europe",
    "subregion": "Western Europe",
    "currencies": {"CHF": {"name": "Swiss franc", "symbol": "Fr."}},
    "languages": {"deu": "German", "fra": "French"},
    "flag": "🇨🇭",
}
SEEN: list[str] = []


async def countries_name(request: Request) -> Response:
    SEEN.append(str(request.url.path) + "?" + request.url.query)
    if request.path_params["name"].lower().startswith("swi"):
        return JSONResponse([SWISS])
    return JSONResponse({"status": 404, "message": "Not Found"}, status_code=404)


async def countries_alpha(request: Request) -> Response:
    if request.path_params["code"].lower() == "ch":
        return JSONResponse([SWISS])
    return JSONResponse({"status": 404, "message": "Not Found"}, status_code=404)


async def countries_region(request: Request) -> Response:
    return JSONResponse(
        [
            SWISS,
            {
                **SWISS,
                "name": {"common": "Austria", "official": "Republic of Austria"},
                "cca2": "AT",
                "population": 9000000,
            },
        ]
    )


def gh_auth(request: Request) -> Response | None:
    if request.headers.get("authorization") != f"Bearer {TOKEN}":
        return JSONResponse({"message": "Bad credentials"}, status_code=401)
    assert request.headers.get("accept") == "application/vnd.github+json"
    return None


async def gh_user(request: Request) -> Response:
    return gh_auth(request) or JSONResponse({"login": "octocat"}, headers={"x-oauth-scopes": "repo"})


async def gh_repos(request: Request) -> Response:
    return gh_auth(request) or JSONResponse(
        [
            {
                "id": 1,
                "name": "hello",
                "full_name": "octocat/hello",
                "private": False,
                "html_url": "https://github.com/octocat/hello",
                "description": "hi",
                "language": "Python",
                "stargazers_count": 3,
                "open_issues_count": 1,
                "updated_at": "2026-11-01T00:00:00Z",
                "default_branch": "main",
            }
        ]
    )


ISSUE = {
    "number": 7,
    "title": "Bug",
    "state": "open",
    "html_url": "https://github.com/octocat/hello/issues/7",
    "user": {"login": "octocat"},
    "labels": [{"name": "bug"}],
    "comments": 0,
    "created_at": "2026-11-01T00:00:00Z",
    "updated_at": "2026-11-02T00:00:00Z",
    "body": "It breaks",
    "assignees": [],
}


async def gh_issues(request: Request) -> Response:
    denied = gh_auth(request)
    if denied:
        return denied
    if request.path_params["repo"] == "missing":
        return JSONResponse({"message": "Not Found"}, status_code=404)
    if request.method == "POST":
        payload = await request.json()
        return JSONResponse({**ISSUE, "number": 8, "title": payload["title"]}, status_code=201)
    return JSONResponse([ISSUE, {**ISSUE, "number": 6, "pull_request": {"url": "x"}}])


async def gh_issue(request: Request) -> Response:
    return gh_auth(request) or JSONResponse(ISSUE)


APP = Starlette(
    routes=[
        Route("/v3.1/name/{name}", countries_name),
        Route("/v3.1/alpha/{code}", countries_alpha),
        Route("/v3.1/region/{region}", countries_region),
        Route("/user", gh_user),
        Route("/user/repos", gh_repos),
        Route("/repos/{owner}/{repo}/issues", gh_issues, methods=["GET", "POST"]),
        Route("/repos/{owner}/{repo}/issues/{n:int}", gh_issue),
    ]
)


@pytest.fixture(scope="module")
def standin() -> Iterator[ServerThread]:
    with ServerThread(APP) as s:
        yield s


def point_at(folder: Path, base: str, url: str) -> None:
    """Rewrite only the connector's BASE constant and the manifest's allowedHosts."""
    connector = folder / "connector.py"
    text, n = re.subn(r'^BASE = "[^"]*"', f'BASE = "{url}{base}"', connector.read_text(), flags=re.M)
    assert n == 1
    connector.write_text(text)
    manifest = json.loads((folder / "config.json").read_text())
    manifest["allowedHosts"] = [url]
    (folder / "config.json").write_text(json.dumps(manifest))


@pytest.fixture
async def client(tmp_path: Path, standin: ServerThread) -> AsyncIterator[httpx.AsyncClient]:
    integrations = tmp_path / "integrations"
    for slug in ("countries", "github", "hotel"):
        shutil.copytree(SHIPPED / slug, integrations / slug)
    point_at(integrations / "countries", "/v3.1", standin.url)
    point_at(integrations / "github", "", standin.url)
    settings = local_settings(integrations, tmp_path / "data")
    async with app_client(settings) as (c, _):
        yield c


async def op(c: httpx.AsyncClient, slug: str, name: str, params: dict | None = None) -> httpx.Response:
    return await c.post(f"/api/integrations/{slug}/operations/{name}", json={"params": params or {}})


def test_shipped_integrations_validate(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(SHIPPED)]) == 0, capsys.readouterr().out


async def test_catalog_status(client: httpx.AsyncClient) -> None:
    items = {i["slug"]: i for i in (await client.get("/api/integrations")).json()["integrations"]}
    assert items["countries"]["status"] == "ready"
    assert items["hotel"]["status"] == "ready"
    assert items["github"]["status"] == "needs_credentials"
    for slug in items:
        assert (await client.get(f"/api/integrations/{slug}/icon")).headers["content-type"] == "image/svg+xml"
        assert (await client.get(f"/api/integrations/{slug}")).json()["setupGuide"]


async def test_countries_read_operations(client: httpx.AsyncClient) -> None:
    r = await op(client, "countries", "search_countries", {"name": "swi"})
    assert r.status_code == 200, r.text
    found = json.dumps(r.json()["data"])
    assert '"name": "Switzerland"' in found and '"capital": "Bern"' in found
    assert '"code": "CHF"' in found and "German" in found
    r = await op(client, "countries", "get_country", {"code": "CH"})
    assert r.status_code == 200 and "Bern" in r.text
    r = await op(client, "countries", "get_country", {"code": "ZZ"})
    assert r.json()["success"] is False and r.json()["error"]["code"] == "connector_error"
    r = await op(client, "countries", "list_by_region", {"region": "europe"})
    assert r.status_code == 200 and "Austria" in r.text
    r = await client.post("/api/integrations/countries/test")
    assert r.json()["ok"] is True, r.json()


async def test_github_reads_and_gated_write(client: httpx.AsyncClient) -> None:
    r = await client.put("/api/integrations/github/credentials", json={"values": {"accessToken": TOKEN}})
    assert r.status_code == 200
    r = await client.post("/api/integrations/github/test")
    assert r.json()["ok"] is True and "octocat" in r.json()["message"]
    r = await op(client, "github", "list_repositories")
    assert r.status_code == 200 and "octocat/hello" in r.text
    r = await op(client, "github", "list_issues", {"owner": "octocat", "repo": "hello"})
    assert r.status_code == 200 and '"number": 6' not in json.dumps(
        r.json()["data"]
    )  # pull requests left out
    r = await op(client, "github", "get_issue", {"owner": "octocat", "repo": "hello", "issue_number": 7})
    assert r.status_code == 200 and "It breaks" in r.text
    r = await op(client, "github", "list_issues", {"owner": "octocat", "repo": "missing"})
    assert "not found" in r.json()["error"]["message"].lower()
    assert TOKEN not in r.text
    r = await op(client, "github", "create_issue", {"owner": "octocat", "repo": "hello", "title": "New"})
    assert r.status_code == 202
    aid = r.json()["approvalId"]
    done = (await client.post(f"/api/approvals/{aid}/approve")).json()
    assert done["status"] == "succeeded" and '"New"' in json.dumps(done["result"])


async def test_hotel_demo_database(client: httpx.AsyncClient) -> None:
    r = await op(client, "hotel", "list_reservations", {"status": "confirmed"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["count"] > 0 and all(row["status"] == "confirmed" for row in body["data"])
    r = await op(client, "hotel", "daily_report", {"date": "2026-11-20"})
    assert r.status_code == 200 and r.json()["count"] >= 1
    r = await op(client, "hotel", "cancel_reservation", {"id": 8})
    assert r.status_code == 202
    r = await client.post("/api/integrations/hotel/test")
    assert r.json()["ok"] is True
