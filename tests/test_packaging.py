"""The built wheel holds every subpackage and the package data (DESIGN §1)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import REPO


def source_packages() -> set[str]:
    found = set()
    for top, name in (("platform", "bollard.platform"), ("sandbox", "bollard.sandbox")):
        root = REPO / top
        assert not (root / "__init__.py").exists(), f"{top}/__init__.py would shadow a module (DESIGN §1)"
        found.add(name)
        for init in root.rglob("__init__.py"):
            rel = init.parent.relative_to(root)
            if "__pycache__" not in rel.parts and "templates" not in rel.parts:
                found.add(".".join([name, *rel.parts]))
    return found


def test_wheel_contains_every_subpackage(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("bollard-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for package in source_packages():
        path = package.replace(".", "/")
        assert any(n.startswith(path + "/") and n.endswith(".py") for n in names), (
            f"{package} missing from the wheel"
        )
    assert "bollard/platform/store/migrations/versions/0001_initial.py" in names
    assert "bollard/platform/scaffold/templates/rest/connector.py" in names
    assert "bollard/platform/store/migrations/script.py.mako" in names
    assert not any(n in ("bollard/platform/__init__.py", "bollard/sandbox/__init__.py") for n in names)
