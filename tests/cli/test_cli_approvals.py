"""``bollard approvals list | show | approve | reject``: JSON out, exit codes, the same
service as the API (DESIGN §6, §11)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bollard.platform.cli import main
from tests.support.integrations import rest_manifest, write_integration


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    code = main(list(args))
    return code, json.loads(capsys.readouterr().out)


def test_decide_approvals_from_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = rest_manifest()
    m["operations"].append({"name": "write_it", "operationType": "write"})
    write_integration(tmp_path / "i", "echo", manifest=m)
    dirs = ["--integrations", str(tmp_path / "i"), "--data-dir", str(tmp_path / "d")]

    code, first = run(capsys, "call", "echo", "write_it", "--params", "{}", *dirs)
    assert code == 2 and first["status"] == "pending"
    code, second = run(capsys, "call", "echo", "write_it", *dirs)
    assert code == 2

    code, listed = run(capsys, "approvals", "list", "--status", "pending", *dirs)
    assert code == 0 and listed["total"] == 2
    assert {a["id"] for a in listed["approvals"]} == {first["approvalId"], second["approvalId"]}
    code, shown = run(capsys, "approvals", "show", first["approvalId"], *dirs)
    assert code == 0 and shown["status"] == "pending" and shown["operation"] == "write_it"

    code, done = run(capsys, "approvals", "approve", first["approvalId"], *dirs)
    assert code == 0, done
    assert done["status"] == "succeeded" and done["decidedBy"] == "cli"
    assert done["result"]["data"] == {"operation": "write_it", "params": {}}
    code, again = run(capsys, "approvals", "approve", first["approvalId"], *dirs)
    assert code == 1 and again["error"]["code"] == "approval_decided"

    code, rejected = run(capsys, "approvals", "reject", second["approvalId"], "--reason", "not today", *dirs)
    assert code == 0 and rejected["status"] == "rejected" and rejected["reason"] == "not today"
    code, listed = run(capsys, "approvals", "list", "--status", "pending", *dirs)
    assert code == 0 and listed["total"] == 0
    code, missing = run(capsys, "approvals", "show", "no-such-id", *dirs)
    assert code == 1 and missing["error"]["code"] == "not_found"


def test_an_approved_operation_that_fails_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = rest_manifest()
    m["operations"].append({"name": "write_it", "operationType": "write"})
    connector = "def execute(ctx):\n    raise Exception('the target refused it')\n"
    write_integration(tmp_path / "i", "echo", manifest=m, connector=connector)
    dirs = ["--integrations", str(tmp_path / "i"), "--data-dir", str(tmp_path / "d")]
    code, pending = run(capsys, "call", "echo", "write_it", *dirs)
    assert code == 2
    code, failed = run(capsys, "approvals", "approve", pending["approvalId"], *dirs)
    assert (
        code == 1 and failed["status"] == "failed" and "the target refused it" in failed["error"]["message"]
    )
