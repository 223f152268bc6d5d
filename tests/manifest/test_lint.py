"""Lints (platform/lint.py): run by the package loader, so ``bollard validate`` and the
server's detail never disagree; hard-coded credentials; required parameters with defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from bollard.platform.cli import main
from bollard.platform.packages import load_folder
from tests.support.integrations import rest_manifest, write_integration

# Built from parts so this file holds no string a secret scanner would flag.
GITHUB = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
GITHUB_PAT = "github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz"
OPENAI = "sk-" + "proj-Abc123Def456Ghi789Jkl0"
SLACK = "xoxb-" + "123456789012-abcdefABCDEF"
AWS = "AKIA" + "IOSFODNN7EXAMPLE"
LONG = "Zq8vT2mW9xK4pL7rB3nY"


def validate(capsys: pytest.CaptureFixture[str], path: Path, *flags: str) -> tuple[int, str]:
    code = main(["validate", *flags, str(path)])
    return code, capsys.readouterr().out


def warnings_of(out: str) -> list[str]:
    return [
        line.strip()[len("warning: ") :] for line in out.splitlines() if line.strip().startswith("warning: ")
    ]


def test_hard_coded_credentials_in_the_connector_are_warnings(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    connector = (
        f'GH = "{GITHUB}"\n'
        f'PAT = "{GITHUB_PAT}"\n'
        f'OPENAI = "{OPENAI}"\n'
        f"# slack: {SLACK}\n"
        f'AWS_ID = "{AWS}"\n'
        f'api_key = "{LONG}"\n'
        f'HEADERS = {{"X-Api-Key": "{LONG}"}}\n'
        "def execute(ctx):\n"
        f'    ctx.password = "{LONG}"\n'
        f'    return ctx.http.get("https://api.example.com/x", token="{LONG}")\n'
        # not credentials: a URL under a secret-looking name, short values, a placeholder
        'TOKEN_URL = "https://api.example.com/oauth/token"\n'
        'token_type = "Bearer"\n'
        'EXAMPLE = "sk-..."\n'
        'key = "name"\n'
    )
    write_integration(
        tmp_path, "leaky", manifest=rest_manifest(allowedHosts=["api.example.com"]), connector=connector
    )
    code, out = validate(capsys, tmp_path / "leaky")
    assert code == 0, out  # warnings only
    found = warnings_of(out)
    lines = sorted(int(w.split(" line ", 1)[1].split(":", 1)[0]) for w in found)
    assert lines == [1, 2, 3, 4, 5, 6, 7, 9, 10], found
    assert "a GitHub token (ghp_…)" in found[0] and "secretBindings" in found[0]
    assert "an AWS access key id" in found[4]
    for secret in (GITHUB, GITHUB_PAT, OPENAI, SLACK, AWS, LONG):
        assert secret not in out  # a lint never repeats the secret


def test_hard_coded_credentials_in_config_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = rest_manifest(connectionConfig={"apiKey": LONG, "apiEndpoint": "https://api.example.com"})
    manifest["metadata"] = {"note": f"use {AWS}"}
    write_integration(tmp_path, "cfg", manifest=manifest)
    for flags in ((), ("--manifest-only",)):
        code, out = validate(capsys, tmp_path / "cfg", *flags)
        assert code == 0, out
        found = warnings_of(out)
        assert any(
            w.startswith("config.json: connectionConfig.apiKey: looks like a hard-coded") for w in found
        )
        assert any(
            w.startswith("config.json: metadata.note: looks like a hard-coded credential, an AWS")
            for w in found
        )
        assert LONG not in out and AWS not in out


def test_required_parameter_with_a_default_is_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = rest_manifest()
    manifest["operations"][0]["parametersSchema"] = {
        "type": "object",
        "properties": {
            "limit": {"type": "integer", "default": 10, "required": True},
            "q": {"type": "string"},
        },
    }
    write_integration(tmp_path, "defaults", manifest=manifest)
    code, out = validate(capsys, tmp_path / "defaults")
    assert code == 0, out
    assert warnings_of(out) == [
        "config.json: operations[0].parametersSchema.properties.limit: is required and has a default, "
        "so the default never applies; remove it from required or drop the default"
    ]


async def test_the_server_shows_the_lints_validate_reports(
    runtime, api, integrations_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    connector = (
        f'KEY = "{AWS}"\ndef execute(ctx):\n    return ctx.http.get("https://evil.example.net/x").status\n'
    )
    folder = write_integration(
        integrations_dir,
        "linty",
        manifest=rest_manifest(allowedHosts=["api.example.com"]),
        connector=connector,
    )
    runtime.registry.reload("linty")
    r = await api.get("/api/integrations/linty")
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ready"  # lints never stop a load on the server
    code, out = validate(capsys, folder)
    assert code == 1  # the URL outside allowedHosts fails validate
    errors = [
        line.strip()[len("error: ") :] for line in out.splitlines() if line.strip().startswith("error: ")
    ]
    assert errors and errors[0].startswith("connector.py line 3: https://evil.example.net")
    assert body["warnings"] == [*errors, *warnings_of(out)]
    assert body["warnings"] == load_folder(folder).warning_messages
    assert AWS not in r.text
