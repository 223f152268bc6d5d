"""Installing through ``POST /api/settings/integrations`` and uninstalling through
``DELETE /api/settings/integrations/{slug}`` (DESIGN §10): an upload and a folder drop
give the same state, dryRun writes nothing, replacing needs a higher version, concurrent
uploads of one slug have one winner, uninstalling expires pending approvals."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from bollard.platform.packages import load_folder
from bollard.platform.settings import Settings
from tests.support.api import Api, app_client
from tests.support.integrations import SIMPLE_CONNECTOR, rest_manifest, write_integration
from tests.support.paths import SHIPPED
from tests.support.zips import folder_zip, listing, make_zip

URL = "/api/settings/integrations"
ICON = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 8 8"><rect width="8" height="8"/></svg>'


def manifest(version: int = 1) -> dict[str, Any]:
    m = rest_manifest(
        title="Weather",
        version=version,
        authMethod="api_key",
        secretBindings=["apiKey"],
        allowedHosts=["api.example.com"],
    )
    m["operations"].append({"name": "post_it", "title": "Post it", "operationType": "write"})
    return m


def package(version: int = 1) -> dict[str, bytes]:
    return {
        "config.json": json.dumps(manifest(version), indent=2).encode(),
        "connector.py": SIMPLE_CONNECTOR.encode(),
        "icon.svg": ICON,
        "README.md": b"# Weather\n",
    }


def zip_of(files: dict[str, bytes], top: str | None = None) -> bytes:
    prefix = f"{top}/" if top else ""
    return make_zip((prefix + n, d) for n, d in files.items())


def as_zip(data: bytes) -> dict[str, Any]:
    return {"files": [("file", ("package.zip", data, "application/zip"))]}


async def upload(api: Api | httpx.AsyncClient, data: bytes, **form: str) -> httpx.Response:
    return await api.post(URL, data=form, **as_zip(data))


def comparable(row: dict[str, Any]) -> dict[str, Any]:
    """A catalog row or detail without the load time (the one field that differs)."""
    out = dict(row)
    out["serving"] = {k: v for k, v in row["serving"].items() if k != "loadedAt"}
    return out


def settings_for(root: Path, name: str) -> Settings:
    return Settings(
        integrations_dir=root / name / "integrations",
        data_dir=root / name / "data",
        secret_key="test-secret-key",
        reload=False,
    )


async def test_upload_and_folder_drop_give_the_same_state(tmp_path: Path) -> None:
    files = package()
    dropped = settings_for(tmp_path, "dropped")
    write_integration(dropped.integrations_dir, "weather", manifest=manifest(), extra=files)
    async with app_client(dropped) as (client, _):
        folder_row = (await client.get("/api/integrations")).json()["integrations"]
        folder_detail = (await client.get("/api/integrations/weather")).json()

    uploaded = settings_for(tmp_path, "uploaded")
    async with app_client(uploaded) as (client, rt):
        r = await upload(client, zip_of(files, top="weather"))  # the slug from the top folder
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["installed"] is True and body["replaced"] is False and body["dryRun"] is False
        upload_row = (await client.get("/api/integrations")).json()["integrations"]
        upload_detail = (await client.get("/api/integrations/weather")).json()
        assert body["contentHash"] == rt.registry.require_version("weather").content_hash

    assert [comparable(r) for r in upload_row] == [comparable(r) for r in folder_row]
    assert comparable(upload_detail) == comparable(folder_detail)
    assert upload_detail["contentHash"] == folder_detail["contentHash"]
    on_disk = uploaded.integrations_dir / "weather"
    assert {p.name: p.read_bytes() for p in on_disk.iterdir()} == files
    # no temporary or replaced folder is left behind
    assert [p.name for p in uploaded.integrations_dir.iterdir()] == ["weather"]


async def test_a_file_set_installs_like_a_zip(integrations_dir: Path, api: Api) -> None:
    parts = [("files", (name, data, "application/octet-stream")) for name, data in package().items()]
    r = await api.post(URL, data={"slug": "weather"}, files=parts)
    assert r.status_code == 201, r.text
    assert r.json()["contentHash"] == (await api.get("/api/integrations/weather")).json()["contentHash"]
    assert {p.name for p in (integrations_dir / "weather").iterdir()} == set(package())


async def test_dry_run_answers_what_would_be_installed_and_writes_nothing(
    integrations_dir: Path, api: Api
) -> None:
    before = listing(integrations_dir)
    r = await upload(api, zip_of(package()), slug="weather", dryRun="true")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["dryRun"] is True and body["installed"] is False
    assert (body["slug"], body["title"], body["version"], body["replaces"]) == ("weather", "Weather", 1, None)
    assert [(o["name"], o["operationType"], o["requiresApproval"]) for o in body["operations"]] == [
        ("echo", "read", False),
        ("post_it", "write", True),
    ]
    assert body["allowedHosts"] == ["api.example.com"]
    assert [f["key"] for f in body["credentialFields"]] == ["apiKey"]
    assert body["credentialFields"][0]["secret"] is True
    assert isinstance(body["warnings"], list)
    assert {f["name"] for f in body["files"]} == set(package())
    assert listing(integrations_dir) == before
    assert (await api.get("/api/integrations")).json()["count"] == 0


async def test_replace_needs_replace_true_and_a_higher_version(integrations_dir: Path, api: Api) -> None:
    assert (await upload(api, zip_of(package(1)), slug="weather")).status_code == 201
    first = (await api.get("/api/integrations/weather")).json()["contentHash"]
    r = await upload(api, zip_of(package(2)), slug="weather")
    assert r.status_code == 409 and "replace=true" in r.json()["error"]["message"]
    r = await upload(api, zip_of(package(2)), slug="weather", replace="true", dryRun="true")
    assert r.status_code == 200 and r.json()["replaces"] == 1
    assert (await api.get("/api/integrations/weather")).json()["contentHash"] == first

    r = await upload(api, zip_of(package(2)), slug="weather", replace="true")
    assert r.status_code == 201, r.text
    assert r.json()["replaced"] is True and r.json()["replaces"] == 1
    detail = (await api.get("/api/integrations/weather")).json()
    assert detail["version"] == 2 and detail["contentHash"] != first
    assert sorted(p.name for p in integrations_dir.iterdir()) == ["weather"]
    r = await upload(api, zip_of(package(2)), slug="weather", replace="true")
    assert r.status_code == 409
    assert "version 2 is not higher than the installed version 2" in r.json()["error"]["message"]


@pytest.mark.parametrize("replace", [False, True])
async def test_concurrent_uploads_of_one_slug_have_one_winner(
    replace: bool, integrations_dir: Path, api: Api
) -> None:
    if replace:
        assert (await upload(api, zip_of(package(1)), slug="weather")).status_code == 201
    form = {"slug": "weather", "replace": "true"} if replace else {"slug": "weather"}
    version = 2 if replace else 1
    variants = [package(version), {**package(version), "README.md": b"# another\n"}]
    answers = await asyncio.gather(*(upload(api, zip_of(files), **form) for files in variants))
    assert sorted(r.status_code for r in answers) == [201, 409], [r.text for r in answers]
    loser = next(r for r in answers if r.status_code == 409)
    assert loser.json()["error"]["code"] == "conflict"
    winner = next(r for r in answers if r.status_code == 201).json()
    assert (await api.get("/api/integrations/weather")).json()["contentHash"] == winner["contentHash"]
    assert sorted(p.name for p in integrations_dir.iterdir()) == ["weather"]


async def test_only_admins_upload_and_uninstall(integrations_dir: Path, api: Api) -> None:
    r = await api.post(URL, role="agent", data={"slug": "weather"}, **as_zip(zip_of(package())))
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    write_integration(integrations_dir, "echo")
    r = await api.delete(f"{URL}/echo", role="agent")
    assert r.status_code == 403
    assert (integrations_dir / "echo").is_dir()


async def test_an_upload_without_a_package_is_a_clear_400(api: Api) -> None:
    r = await api.post(URL, data={"slug": "weather"})
    assert r.status_code == 400 and "'file' field" in r.json()["error"]["message"]


async def test_uninstall_expires_pending_approvals_and_keeps_credentials(
    integrations_dir: Path, api: Api
) -> None:
    assert (await upload(api, zip_of(package()), slug="weather")).status_code == 201
    r = await api.put("/api/integrations/weather/credentials", json={"values": {"apiKey": "k-1"}})
    assert r.status_code == 200, r.text
    held = await api.post("/api/integrations/weather/operations/post_it", json={"params": {}})
    assert held.status_code == 202, held.text
    approval_id = held.json()["approvalId"]

    r = await api.delete(f"{URL}/weather")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "slug": "weather",
        "uninstalled": True,
        "version": 1,
        "approvalsExpired": 1,
        "credentialsPurged": [],
    }
    assert not (integrations_dir / "weather").exists() and list(integrations_dir.iterdir()) == []
    assert (await api.get("/api/integrations/weather")).status_code == 404
    approval = (await api.get(f"/api/approvals/{approval_id}")).json()
    assert approval["status"] == "expired" and approval["error"]["code"] == "approval_stale"
    r = await api.post(f"/api/approvals/{approval_id}/approve")
    assert r.status_code == 409 and r.json()["error"]["code"] == "approval_stale"
    assert (await api.delete(f"{URL}/weather")).status_code == 404

    # installed again: the kept credential is still set; purging removes it
    assert (await upload(api, zip_of(package()), slug="weather")).status_code == 201
    detail = (await api.get("/api/integrations/weather")).json()
    assert detail["status"] == "ready" and detail["secretBindings"][0]["set"] is True
    r = await api.delete(f"{URL}/weather", params={"purgeCredentials": "true"})
    assert r.status_code == 200 and r.json()["credentialsPurged"] == ["default"]
    assert (await upload(api, zip_of(package()), slug="weather")).status_code == 201
    detail = (await api.get("/api/integrations/weather")).json()
    assert detail["status"] == "needs_credentials" and detail["secretBindings"][0]["set"] is False


async def test_uninstall_of_an_unknown_or_invalid_slug_is_404(integrations_dir: Path, api: Api) -> None:
    outside = integrations_dir.parent / "keep"
    outside.mkdir()
    for slug in ("nope", "..", "%2e%2e", "keep"):
        r = await api.delete(f"{URL}/{slug}")
        assert r.status_code == 404, (slug, r.text)
    assert outside.is_dir()


@pytest.fixture
def broken(integrations_dir: Path) -> Path:
    return write_integration(integrations_dir, "broken", manifest="[1, 2")


async def test_uninstall_removes_a_folder_that_never_loaded(broken: Path, api: Api) -> None:
    assert (await api.get("/api/integrations/broken")).json()["status"] == "error"
    r = await api.delete(f"{URL}/broken")
    assert r.status_code == 200 and r.json()["version"] is None
    assert not broken.exists()
    assert (await api.get("/api/integrations/broken")).status_code == 404


async def test_uninstall_removes_a_folder_the_registry_has_not_seen(integrations_dir: Path, api: Api) -> None:
    folder = write_integration(integrations_dir, "late")  # written after start, no watcher
    assert (await api.get("/api/integrations/late")).status_code == 404
    r = await api.delete(f"{URL}/late")
    assert r.status_code == 200 and not folder.exists()


@pytest.mark.parametrize("slug", sorted(p.name for p in SHIPPED.iterdir() if (p / "config.json").is_file()))
async def test_every_shipped_integration_uploads_as_a_zip(slug: str, api: Api) -> None:
    r = await upload(api, folder_zip(SHIPPED / slug, top=slug))
    assert r.status_code == 201, r.text
    assert r.json()["slug"] == slug
    assert r.json()["contentHash"] == load_folder(SHIPPED / slug).content_hash
