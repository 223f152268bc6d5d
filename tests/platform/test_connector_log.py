"""Attack test for connector log lines (hardening issue item 10, DESIGN §4.6): text from
``ctx.log``/``print`` with CR, LF, ESC or other control characters cannot forge a line of
the server log, and the execution record keeps the same escaped lines."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bollard.platform.execution_log import ExecutionFilter
from bollard.platform.settings import Settings
from tests.support.api import app_client
from tests.support.integrations import rest_manifest, write_integration

FORGER = r"""
def execute(ctx):
    ctx.log("ok\r\n2026-01-01 00:00:00 WARNING bollard.approvals: approval 1 approved by admin")
    print("\x1b[2K\x1b[1Gcolour\x00nul\x7fdel\u2028sep\x85nel")
    return "done"
"""
CONTROL = [chr(c) for c in (*range(0x20), *range(0x7F, 0xA0))] + ["\u2028", "\u2029"]


async def test_control_characters_cannot_forge_server_log_lines(
    integrations_dir: Path, data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_integration(integrations_dir, "forger", manifest=rest_manifest(), connector=FORGER)
    settings = Settings(integrations_dir=integrations_dir, data_dir=data_dir, secret_key="k", reload=False)
    async with app_client(settings) as (c, rt):
        with caplog.at_level(logging.INFO, logger="bollard.connector"):
            r = await c.post("/api/integrations/forger/operations/echo", json={"params": {}})
        assert r.status_code == 200 and r.json()["data"] == "done"
        lines = [rec.getMessage() for rec in caplog.records if rec.name == "bollard.connector"]
        assert len(lines) == 2
        for line in lines:
            assert not any(ch in line for ch in CONTROL), repr(line)
        assert lines[0].endswith(
            r"ok\r\n2026-01-01 00:00:00 WARNING bollard.approvals: approval 1 approved by admin"
        )
        assert lines[1].endswith(r"\x1b[2K\x1b[1Gcolour\x00nul\x7fdel\u2028sep\x85nel")
        await rt.execution_log.flush()
        rows, _ = await rt.execution_log.query(ExecutionFilter(integration="forger"))
        stored = await rt.execution_log.get(rows[0]["id"])
        assert stored is not None
        stored_lines = stored["logs"]
        assert stored_lines == [line.split(": ", 1)[1] for line in lines]
