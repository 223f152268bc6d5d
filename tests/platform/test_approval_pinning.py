"""The version an approval was checked against is the version that runs (issue 9, item 22;
DESIGN §6). ``config.json`` is rewritten between two versions while approvals are
decided; every run must be the version its approval bound, or be refused as stale."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

from bollard.platform.runtime import Runtime
from tests.support.api import Api

ROUNDS = 60


def manifest(n: int) -> dict:
    return {
        "title": "Pinned",
        "version": n,
        "type": "sql",
        "authMethod": "none",
        "sqlConnectionConfig": {"engine": "sqlite", "options": {"database": "pinned.db"}},
        "sqlOperations": [
            {"name": "which", "requiresApproval": True, "query": f"SELECT 'v{n}' AS tag"},
        ],
    }


async def test_every_approved_run_is_the_approved_version(
    integrations_dir: Path, runtime: Runtime, api: Api
) -> None:
    folder = integrations_dir / "pinned"
    folder.mkdir()
    texts = [json.dumps(manifest(1)), json.dumps(manifest(2))]
    (folder / "config.json").write_text(texts[0])
    runtime.registry.reload("pinned")
    stop = asyncio.Event()

    async def flip() -> None:
        """Rewrite config.json and reload at every turn of the event loop."""
        i = 0
        while not stop.is_set():
            i += 1
            (folder / "config.json").write_text(texts[i % 2])
            runtime.registry.reload("pinned")
            await asyncio.sleep(0)

    flipper = asyncio.create_task(flip())
    ran, stale, mismatches = 0, 0, []
    try:
        for _ in range(ROUNDS):
            r = await api.post("/api/integrations/pinned/operations/which", role="agent", json={"params": {}})
            assert r.status_code == 202, r.text
            aid = r.json()["approvalId"]
            r = await api.post(f"/api/approvals/{aid}/approve")
            if r.status_code == 409:
                assert r.json()["error"]["code"] == "approval_stale", r.text
                stale += 1
                continue
            assert r.status_code == 200, r.text
            approval = r.json()
            assert approval["status"] == "succeeded", approval
            ran += 1
            result = approval["result"]
            if result["version"] != approval["version"] or result["data"] != [
                {"tag": f"v{approval['version']}"}
            ]:
                mismatches.append((approval["version"], result["version"], result["data"]))
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await flipper
    assert ran > 0 and ran + stale == ROUNDS
    assert mismatches == []
