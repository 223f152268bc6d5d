"""The in-process event bus (platform/events.py) and what the runtime publishes on it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from bollard.platform.events import QUEUE_SIZE, RESYNC, Event, EventBus

pytestmark = pytest.mark.asyncio


async def test_subscribers_get_their_topics_only() -> None:
    bus = EventBus()
    async with bus.subscribe("registry") as queue:
        bus.publish("approval", {"id": "a"})
        bus.publish("registry", {"slug": "x", "contentHash": "h"})
        event = await asyncio.wait_for(queue.get(), 1)
    assert event == Event("registry", {"slug": "x", "contentHash": "h"})
    assert queue.empty()


async def test_a_full_queue_becomes_one_resync() -> None:
    bus = EventBus()
    async with bus.subscribe("approval") as queue:
        for i in range(QUEUE_SIZE + 5):
            bus.publish("approval", {"id": str(i)})
        assert queue.get_nowait() == RESYNC


async def test_a_failing_handler_does_not_stop_the_others() -> None:
    bus = EventBus()
    seen: list[Event] = []

    def bad(event: Event) -> None:
        raise RuntimeError("boom")

    bus.on("token", bad)
    remove = bus.on(("token",), seen.append)
    bus.publish("token", {"tokenId": "t"})
    remove()
    bus.publish("token", {"tokenId": "u"})
    assert [e.payload for e in seen] == [{"tokenId": "t"}]


async def test_a_folder_change_is_a_registry_event(tmp_path: Path) -> None:
    from bollard.platform.runtime import Runtime
    from bollard.platform.settings import Settings

    root = tmp_path / "integrations"
    (root / "demo").mkdir(parents=True)
    manifest = {
        "title": "Demo",
        "type": "rest_api",
        "operations": [{"name": "ping", "description": "ping"}],
    }
    (root / "demo" / "config.json").write_text(json.dumps(manifest))
    (root / "demo" / "connector.py").write_text("def execute(ctx):\n    return {}\n")
    settings = Settings(integrations_dir=root, data_dir=tmp_path / "data")
    async with Runtime(settings) as rt, rt.events.subscribe("registry") as queue:
        (root / "demo").rename(root / "gone")
        await rt.registry.reload_async("demo")
        event = await asyncio.wait_for(queue.get(), 5)
    assert event.payload == {"slug": "demo", "contentHash": None}
