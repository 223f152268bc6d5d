"""Every Makefile target does something real (README "Quick start"), checked with
``make -n`` (print the commands, run none) on a copy of the Makefile in a scratch
folder, so nothing is built or installed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.paths import REPO

TARGETS = (
    "run",
    "test",
    "lint",
    "typecheck",
    "format",
    "bench",
    "bench-all",
    "fuzz",
    "clean",
    "install",
    "install-test",
    "vendor",
    "node",
)

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def phony() -> list[str]:
    text = (REPO / "Makefile").read_text()
    return [t for line in re.findall(r"^\.PHONY:(.*)$", text, re.M) for t in line.split()]


def dry_run(tmp_path: Path, target: str) -> list[str]:
    """The commands ``make <target>`` would run in a fresh clone (no .venv yet)."""
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "tests" / "node").mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy(REPO / "tests" / "node" / name, tmp_path / "tests" / "node" / name)
    # as from a shell, even under `make test` (no inherited MAKEFLAGS, no "Entering directory")
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    done = subprocess.run(
        ["make", "--no-print-directory", "-n", target],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"make -n {target}: {done.stderr}"
    return [line for line in done.stdout.splitlines() if line.strip()]


def test_every_phony_target_has_a_rule_and_the_expected_ones_exist(tmp_path: Path) -> None:
    assert sorted(phony()) == sorted(TARGETS)
    for target in TARGETS:
        commands = dry_run(tmp_path, target)
        assert commands, f"make {target} runs nothing"


def test_lint_is_ruff_check_format_check_and_mypy(tmp_path: Path) -> None:
    commands = dry_run(tmp_path, "lint")
    assert any("ruff check" in c for c in commands)
    assert any("ruff format --check" in c for c in commands)
    assert any(c.endswith("mypy") for c in commands)


def test_test_runs_lint_first_then_pytest(tmp_path: Path) -> None:
    commands = dry_run(tmp_path, "test")
    lint = [i for i, c in enumerate(commands) if "ruff format --check" in c or "mypy" in c]
    tests = [i for i, c in enumerate(commands) if "pytest" in c]
    assert lint and tests and max(lint) < min(tests)


def test_test_installs_chromium_with_apt_when_missing(tmp_path: Path) -> None:
    """The browser tests need Debian's chromium: ``make test`` installs it (as root) when
    ``chromium`` is not on the PATH, and never lets playwright download a browser."""
    commands = " ".join(dry_run(tmp_path, "test"))
    assert "command -v chromium" in commands and "apt-get install -y -qq chromium" in commands
    assert "playwright install" not in commands


def test_node_installs_the_locked_packages_with_npm_ci(tmp_path: Path) -> None:
    assert any("npm ci" in c for c in dry_run(tmp_path, "node"))
    assert any("npm ci" in c for c in dry_run(tmp_path, "test"))


def test_format_formats_and_fixes(tmp_path: Path) -> None:
    commands = dry_run(tmp_path, "format")
    assert any(re.search(r"ruff format (?!--check)", c) for c in commands)
    assert any("ruff check --fix" in c for c in commands)


def test_fuzz_runs_the_conformance_test_longer(tmp_path: Path) -> None:
    (command,) = [c for c in dry_run(tmp_path, "fuzz") if "pytest" in c]
    assert "BOLLARD_FUZZ_EXAMPLES=200" in command and "tests/api/test_api_conformance.py" in command


def test_typecheck_runs_mypy(tmp_path: Path) -> None:
    assert any(c.endswith("mypy") for c in dry_run(tmp_path, "typecheck"))


def test_clean_keeps_the_credential_key(tmp_path: Path) -> None:
    commands = dry_run(tmp_path, "clean")
    assert any("rm -rf" in c and ".venv" in c for c in commands)
    assert not any(".bollard" in c for c in commands)  # secret.key: deleting it loses every credential
