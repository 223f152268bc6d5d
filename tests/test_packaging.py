"""The built wheel holds every subpackage and the package data (DESIGN §1)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from tests.support.paths import REPO


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
    # the web page works from the wheel: templates, its script and the vendored assets with licences
    for web_file in (
        "templates/base.html",
        "templates/parts/credentials.html",
        "static/app.js",
        "static/app.css",
        "static/vendor/VENDOR.txt",
        "static/vendor/htmx/htmx.min.js",
        "static/vendor/htmx/LICENSE",
        "static/vendor/pico/pico.min.css",
        "static/vendor/pico/LICENSE.md",
    ):
        assert f"bollard/platform/web/{web_file}" in names, f"{web_file} missing from the wheel"
    assert not any(n in ("bollard/platform/__init__.py", "bollard/sandbox/__init__.py") for n in names)


def test_every_folder_of_code_or_data_is_a_declared_package() -> None:
    """Python sees every folder as a (namespace) package; setuptools warns about and may
    drop one holding files that ``packages`` does not list (the scaffold templates)."""
    import tomllib

    declared = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    for top, name in (("platform", "bollard.platform"), ("sandbox", "bollard.sandbox")):
        root = REPO / top
        for folder in [root, *(p for p in root.rglob("*") if p.is_dir())]:
            rel = folder.relative_to(root)
            if "__pycache__" in rel.parts or not any(f.is_file() for f in folder.iterdir()):
                continue
            package = ".".join([name, *rel.parts])
            assert package in declared, f"{package} is not in [tool.setuptools] packages"


def test_build_prints_no_setuptools_warnings(tmp_path: Path) -> None:
    """``python -m build`` (sdist and wheel) with the SPDX licence string and every package
    declared: no deprecation or "absent from packages" warning (setuptools >= 77)."""
    out = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(tmp_path), str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    text = out.stdout + out.stderr
    for needle in ("SetuptoolsDeprecationWarning", "BuildBackendWarning", "is absent from the `packages`"):
        assert needle not in text, text[text.find(needle) - 500 : text.find(needle) + 1500]
    assert sorted(p.suffix for p in tmp_path.iterdir()) == [".gz", ".whl"]
    wheel = next(tmp_path.glob("*.whl"))
    metadata = next(n for n in zipfile.ZipFile(wheel).namelist() if n.endswith("METADATA"))
    assert "License-Expression: MIT" in zipfile.ZipFile(wheel).read(metadata).decode()
