"""The registry: start-up load, load errors per folder, and live reload with the real watcher."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from pathlib import Path

import pytest

from bollard.platform.packages import MANIFEST_MAX_BYTES
from bollard.platform.registry import Registry
from tests.support.integrations import rest_manifest, write_integration


def test_loads_good_and_reports_bad_folders(integrations_dir: Path) -> None:
    write_integration(integrations_dir, "good")
    write_integration(integrations_dir, "badjson", manifest="{ not json")
    write_integration(integrations_dir, "Bad_Slug")
    write_integration(integrations_dir, "noconfig").joinpath("config.json").unlink()
    big = rest_manifest(description="x" * 100)
    big["metadata"] = {"pad": "y" * MANIFEST_MAX_BYTES}
    write_integration(integrations_dir, "huge", manifest=big)
    link = write_integration(integrations_dir, "linked")
    (link / "config.json").unlink()
    (link / "config.json").symlink_to(integrations_dir / "good" / "config.json")
    (integrations_dir / ".hidden").mkdir()

    reg = Registry(integrations_dir)
    reg.load_all()
    by_slug = {e.slug: e for e in reg.entries()}

    assert set(by_slug) == {"good", "badjson", "Bad_Slug", "noconfig", "huge", "linked"}
    assert by_slug["good"].version is not None and not by_slug["good"].errors
    assert "invalid JSON at line 1 column 3" in by_slug["badjson"].status_error
    assert "not a valid slug" in by_slug["Bad_Slug"].status_error
    assert "config.json is missing" in by_slug["noconfig"].status_error
    assert f"the limit is {MANIFEST_MAX_BYTES} bytes" in by_slug["huge"].status_error
    assert "symbolic link" in by_slug["linked"].status_error
    for slug in ("badjson", "Bad_Slug", "noconfig", "huge", "linked"):
        assert by_slug[slug].version is None


def test_connector_compile_error_names_the_line(integrations_dir: Path) -> None:
    write_integration(integrations_dir, "evil", connector="def execute(ctx):\n    return eval('1')\n")
    reg = Registry(integrations_dir)
    reg.load_all()
    err = reg.get("evil").status_error
    assert "connector.py" in err and "Line 2" in err


def test_rest_integration_without_connector_is_an_error(integrations_dir: Path) -> None:
    write_integration(integrations_dir, "noconn", connector=None)
    reg = Registry(integrations_dir)
    reg.load_all()
    assert "needs a connector.py" in reg.get("noconn").status_error


def test_content_hash_changes_with_any_file(integrations_dir: Path) -> None:
    folder = write_integration(integrations_dir, "echo")
    reg = Registry(integrations_dir)
    reg.load_all()
    first = reg.get("echo").version.content_hash
    (folder / "connector.py").write_text("def execute(ctx):\n    return 2\n")
    reg.reload("echo")
    second = reg.get("echo").version.content_hash
    assert first != second and len(second) == 64


def test_invalid_edit_keeps_last_good_version(integrations_dir: Path) -> None:
    folder = write_integration(integrations_dir, "echo")
    reg = Registry(integrations_dir)
    reg.load_all()
    good = reg.get("echo").version
    (folder / "config.json").write_text(json.dumps(rest_manifest(title="")))
    entry = reg.reload("echo")
    assert entry.version is good
    assert entry.errors and "title" in entry.status_error


async def _wait_for(predicate, timeout: float = 5.0) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return time.monotonic() - start
        await asyncio.sleep(0.02)
    raise AssertionError(f"condition not reached within {timeout:.1f}s")


async def test_live_reload_with_the_real_watcher(integrations_dir: Path) -> None:
    reg = Registry(integrations_dir)
    reg.load_all()
    stop = asyncio.Event()
    task = asyncio.create_task(reg.watch(stop, debounce_ms=100))
    await asyncio.sleep(0.3)  # let inotify start
    try:
        # create
        write_integration(integrations_dir, "live")
        await _wait_for(lambda: reg.get("live") is not None and reg.get("live").version is not None)
        v1 = reg.get("live").version

        # edit (valid): a new version swaps in
        cfg = integrations_dir / "live" / "config.json"
        cfg.write_text(json.dumps(rest_manifest(title="Live v2", version=2)))
        await _wait_for(lambda: reg.get("live").version.manifest.title == "Live v2")
        assert v1.manifest.title == "Echo"  # the old version object is untouched

        # break: last good keeps serving, error shown
        cfg.write_text("{ broken")
        await _wait_for(lambda: bool(reg.get("live").errors))
        assert reg.get("live").version.manifest.title == "Live v2"

        # fix again
        cfg.write_text(json.dumps(rest_manifest(title="Live v3", version=3)))
        await _wait_for(lambda: not reg.get("live").errors and reg.get("live").version.version == 3)

        # delete
        shutil.rmtree(integrations_dir / "live")
        await _wait_for(lambda: reg.get("live") is None)
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read any file")
def test_unreadable_config_is_a_load_error(integrations_dir: Path) -> None:
    folder = write_integration(integrations_dir, "secret")
    (folder / "config.json").chmod(0)
    reg = Registry(integrations_dir)
    reg.load_all()
    assert reg.get("secret").errors
