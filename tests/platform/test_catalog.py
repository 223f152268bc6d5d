"""The catalog layer every surface reads: one set of rows for the API and the CLI, the
serving version of a broken edit, and JSON errors for anything unexpected."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from bollard.platform.api.app import create_app
from bollard.platform.cli import main
from bollard.platform.runtime import Runtime
from tests.support.api import Api
from tests.support.integrations import rest_manifest, write_integration


def without_load_times(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        row = dict(row)
        if "serving" in row:
            row["serving"] = {k: v for k, v in row["serving"].items() if k != "loadedAt"}
        if "error" in row:
            row["error"] = row["error"].split(" (the last good version")[0]
        out.append(row)
    return out


async def test_cli_list_and_the_api_show_the_same_rows(
    integrations_dir: Path, data_dir: Path, runtime: Runtime, api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    write_integration(integrations_dir, "echo")
    write_integration(
        integrations_dir,
        "keyed",
        manifest=rest_manifest(authMethod="api_key", secretBindings=["apiKey"]),
    )
    write_integration(integrations_dir, "broken", manifest="{not json")
    runtime.registry.load_all()
    api_rows = (await api.get("/api/integrations")).json()["integrations"]
    capsys.readouterr()
    # The CLI runs its own event loop (asyncio.run), so it runs in a thread here.
    args = ["list", "--json", "--integrations", str(integrations_dir), "--data-dir", str(data_dir)]
    code = await asyncio.to_thread(main, args)
    assert code == 0
    cli_rows = json.loads(capsys.readouterr().out)
    assert [r["slug"] for r in api_rows] == ["broken", "echo", "keyed"]
    assert without_load_times(cli_rows) == without_load_times(api_rows)
    statuses = {r["slug"]: r["status"] for r in api_rows}
    assert statuses == {"broken": "error", "echo": "ready", "keyed": "needs_credentials"}


async def test_a_broken_edit_says_which_version_still_serves(
    integrations_dir: Path, runtime: Runtime, api: Api
) -> None:
    folder = write_integration(integrations_dir, "live", manifest=rest_manifest(version=3))
    runtime.registry.load_all()
    before = (await api.get("/api/integrations/live")).json()
    assert before["status"] == "ready" and before["serving"]["version"] == 3
    loaded_at = before["serving"]["loadedAt"]
    assert loaded_at.endswith("+00:00")

    (folder / "config.json").write_text(json.dumps(rest_manifest(version=4, authMethod="nope")))
    runtime.registry.reload("live")
    row = next(r for r in (await api.get("/api/integrations")).json()["integrations"] if r["slug"] == "live")
    assert row["status"] == "error"
    assert row["serving"] == {"version": 3, "contentHash": before["contentHash"], "loadedAt": loaded_at}
    assert "authMethod" in row["error"]
    assert f"the last good version 3, loaded {loaded_at}, still serves" in row["error"]
    detail = (await api.get("/api/integrations/live")).json()
    assert detail["status"] == "error" and detail["serving"]["version"] == 3
    # And it really does still serve.
    r = await api.post("/api/integrations/live/operations/echo", json={"params": {"text": "hi"}})
    assert r.status_code == 200 and r.json()["version"] == 3


async def test_an_unexpected_error_is_a_json_500_with_an_error_id(
    runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(runtime=runtime)

    async def boom() -> None:
        raise RuntimeError("secret internals")

    app.add_api_route("/boom", boom)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bollard.test") as client:
        with caplog.at_level(logging.ERROR, logger="bollard.api"):
            r = await client.get("/boom")
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/json"
    err = r.json()["error"]
    assert err["code"] == "internal_error"
    assert "secret internals" not in r.text and "Traceback" not in r.text
    error_id = err["details"]["errorId"]
    assert error_id in err["message"]
    logged = [rec for rec in caplog.records if error_id in rec.getMessage()]
    assert logged and logged[0].exc_info is not None
