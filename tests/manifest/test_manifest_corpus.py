"""Every manifest of Tale's own corpus loads unchanged (DESIGN §2), through the model, the
CLI (``bollard validate --manifest-only``) and the published JSON Schema."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from bollard.platform import cli
from bollard.platform.manifest import json_schema, parse_manifest_bytes
from tests.support.paths import CORPUS

CORPUS_DIRS = sorted(p.parent for p in CORPUS.glob("*/config.json"))
NAMES = [p.name for p in CORPUS_DIRS]


def _raw(folder: Path) -> dict[str, Any]:
    data = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_corpus_is_present() -> None:
    # The 13 manifests of Tale's examples (see NOTICE in the corpus folder).
    assert len(CORPUS_DIRS) == 13, NAMES
    assert {"protel", "github", "shopify", "twilio"} <= set(NAMES)


@pytest.mark.parametrize("folder", CORPUS_DIRS, ids=NAMES)
def test_corpus_manifest_parses(folder: Path) -> None:
    raw = _raw(folder)
    parsed = parse_manifest_bytes((folder / "config.json").read_bytes())
    m = parsed.manifest
    assert m.title == raw["title"]
    assert m.auth_method == raw["authMethod"]
    assert m.type == raw.get("type", "rest_api")
    assert m.version == raw.get("version", 1)
    assert m.allowed_hosts == raw.get("allowedHosts", [])
    assert m.secret_bindings == raw.get("secretBindings", [])
    raw_ops = [*raw.get("operations", []), *raw.get("sqlOperations", [])]
    assert [op.name for op in m.all_operations] == [op["name"] for op in raw_ops]
    assert m.all_operations, "every corpus manifest declares operations"
    for raw_op, op in zip(raw_ops, m.all_operations, strict=True):
        assert op.operation_type == raw_op.get("operationType", "read")
        assert op.needs_approval == (
            raw_op["requiresApproval"]
            if "requiresApproval" in raw_op
            else raw_op.get("operationType") == "write"
        )
        # Every declared parameter survives normalisation, and every parameter Tale
        # marks with "required": true ends up in the standard array.
        raw_props = (raw_op.get("parametersSchema") or {}).get("properties", {})
        assert set(op.params_schema.get("properties", {})) == set(raw_props)
        tale_required = {n for n, p in raw_props.items() if p.get("required") is True}
        assert tale_required <= set(op.params_schema.get("required", []))
        # The normalised schema is a valid JSON Schema.
        jsonschema.Draft202012Validator.check_schema(op.params_schema)
    # No warnings for Tale's own manifests (names are recommended ones, params used).
    assert [str(w) for w in parsed.warnings] == []


def test_corpus_file_is_not_modified_by_parsing() -> None:
    folder = CORPUS / "protel"
    before = (folder / "config.json").read_bytes()
    parse_manifest_bytes(before)
    assert (folder / "config.json").read_bytes() == before


@pytest.mark.parametrize("folder", CORPUS_DIRS, ids=NAMES)
def test_cli_validate_manifest_only(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["validate", "--manifest-only", str(folder)])
    out = capsys.readouterr().out
    assert code == 0, out
    assert f"✓ {folder.name}" in out
    assert "error:" not in out
    assert out.rstrip().endswith("1 valid, 0 invalid")


def test_cli_validate_whole_corpus_directory(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["validate", "--manifest-only", str(CORPUS)])
    out = capsys.readouterr().out
    assert code == 0, out
    for name in NAMES:
        assert f"✓ {name}" in out
    assert out.rstrip().endswith(f"{len(NAMES)} valid, 0 invalid")


def test_cli_validate_reports_a_broken_copy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same command fails (exit 1) and names the path once one field is broken."""
    good = tmp_path / "github"
    shutil.copytree(CORPUS / "github", good)
    bad = tmp_path / "protel"
    shutil.copytree(CORPUS / "protel", bad)
    data = _raw(bad)
    data["sqlConnectionConfig"]["security"]["maxResultRows"] = 0
    (bad / "config.json").write_text(json.dumps(data), encoding="utf-8")

    code = cli.main(["validate", "--manifest-only", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1
    assert "✓ github" in out
    assert "✗ protel" in out
    assert "error: config.json: sqlConnectionConfig.security.maxResultRows: " in out
    assert out.rstrip().endswith("1 valid, 1 invalid")


def test_cli_names_the_file_for_file_level_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "syntax").mkdir()
    (tmp_path / "syntax" / "config.json").write_text('{\n  "title": "x",\n}', encoding="utf-8")
    (tmp_path / "array").mkdir()
    (tmp_path / "array" / "config.json").write_text("[]", encoding="utf-8")
    code = cli.main(["validate", "--manifest-only", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 1
    assert "error: config.json: invalid JSON at line 3 column 1: " in out
    assert "error: config.json: the file must hold a JSON object" in out
    assert out.rstrip().endswith("0 valid, 2 invalid")


def _console_script() -> Path:
    script = Path(sys.executable).parent / "bollard"
    assert script.exists(), f"the console entry point is not installed next to {sys.executable}"
    return script


def test_console_entry_point_validates_corpus() -> None:
    proc = subprocess.run(
        [str(_console_script()), "validate", "--manifest-only", str(CORPUS)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"{len(NAMES)} valid, 0 invalid" in proc.stdout


def test_python_dash_m_cli_validates_corpus(tmp_path: Path) -> None:
    # Run from an unrelated folder so that nothing but the installed package is imported.
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bollard.platform.cli",
            "validate",
            "--manifest-only",
            str(CORPUS / "protel"),
            str(CORPUS / "slack"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "✓ protel" in proc.stdout
    assert "✓ slack" in proc.stdout
    assert "2 valid, 0 invalid" in proc.stdout


def test_console_entry_point_exit_code_on_error(tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "config.json").write_text('{"title": "x"}', encoding="utf-8")
    proc = subprocess.run(
        [str(_console_script()), "validate", "--manifest-only", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "error: config.json: authMethod: is required" in proc.stdout


# --- the JSON Schema published for editors -------------------------------------------


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_schema_is_draft_2020_12() -> None:
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == "https://bollard.dev/schema/config.json"
    assert schema["type"] == "object"
    assert set(schema["required"]) == {"title", "authMethod"}


@pytest.mark.parametrize("folder", CORPUS_DIRS, ids=NAMES)
def test_schema_accepts_corpus_manifest(folder: Path, validator: jsonschema.Draft202012Validator) -> None:
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(_raw(folder))
    ]
    assert errors == []


def test_schema_agrees_with_model_on_top_level_keys(
    validator: jsonschema.Draft202012Validator,
) -> None:
    data = _raw(CORPUS / "github")
    assert validator.is_valid({**data, "$schema": "https://bollard.dev/schema/config.json"})
    assert not validator.is_valid({**data, "endpoints": []})
    assert not validator.is_valid({k: v for k, v in data.items() if k != "authMethod"})
    assert not validator.is_valid({**data, "type": "graphql"})
    assert not validator.is_valid({**data, "version": 0})


def test_cli_schema_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == json_schema()
