"""Attack tests for loading (hardening issue item 9, DESIGN §4.6, §10): any exception
while loading one folder is that folder's load error, at start and in the real watcher,
which keeps reloading other folders afterwards; listeners run on the event loop's thread."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from pathlib import Path

import pytest

from bollard.platform.registry import IntegrationEntry, Registry
from bollard.platform.runtime import Runtime
from bollard.platform.settings import Settings
from tests.support.integrations import rest_manifest, write_integration

# `a.b.b.b…` 3,000 links deep: RecursionError inside ast construction.
DEEP_CONNECTOR = "def execute(ctx):\n    return a" + ".b" * 3000 + "\n"


async def _wait_for(predicate, timeout: float = 10.0) -> None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"condition not reached within {timeout:.1f}s")


def test_recursion_error_at_start_is_that_folders_load_error(integrations_dir: Path) -> None:
    write_integration(integrations_dir, "deep", connector=DEEP_CONNECTOR)
    write_integration(integrations_dir, "good")
    reg = Registry(integrations_dir)
    reg.load_all()
    deep = reg.get("deep")
    assert deep is not None and deep.version is None
    assert "connector.py: an expression is nested too deeply" in deep.status_error
    assert reg.get("good").version is not None


async def test_runtime_starts_with_a_folder_that_raises(integrations_dir: Path, data_dir: Path) -> None:
    write_integration(integrations_dir, "deep", connector=DEEP_CONNECTOR)
    write_integration(integrations_dir, "good")
    settings = Settings(
        integrations_dir=integrations_dir, data_dir=data_dir, secret_key="k" * 16, reload=False
    )
    async with Runtime(settings) as rt:
        assert rt.registry.get("deep").version is None
        assert rt.registry.get("good").version is not None


async def test_watcher_survives_a_folder_that_raises(
    integrations_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_integration(integrations_dir, "other")
    reg = Registry(integrations_dir)
    reg.load_all()
    threads: list[int] = []

    def listener(slug: str, entry: IntegrationEntry | None) -> None:
        threads.append(threading.get_ident())
        asyncio.get_running_loop()  # a listener may touch the loop (the runtime's does)

    reg.add_listener(listener)
    stop = asyncio.Event()
    task = asyncio.create_task(reg.watch(stop, debounce_ms=100))
    await asyncio.sleep(0.3)  # let inotify start
    try:
        with caplog.at_level(logging.WARNING, logger="bollard.registry"):
            write_integration(integrations_dir, "deep", connector=DEEP_CONNECTOR)
            await _wait_for(lambda: reg.get("deep") is not None and bool(reg.get("deep").errors))
        assert "nested too deeply" in reg.get("deep").status_error
        assert any("deep" in r.getMessage() for r in caplog.records)
        # a second folder edited afterwards still reloads: the watcher is alive
        cfg = integrations_dir / "other" / "config.json"
        cfg.write_text(json.dumps(rest_manifest(title="Other v2", version=2)))
        await _wait_for(lambda: reg.get("other").version.manifest.title == "Other v2")
        assert not task.done()
        assert threads and set(threads) == {threading.get_ident()}
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)
