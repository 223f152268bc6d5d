"""What this replica does when another replica says something changed (DESIGN §12).

Events from other replicas arrive on the runtime's bus with ``remote=True``
(``platform/pg_events.py``); this module turns them into local effects, at once (the
caches' TTL, ``BOLLARD_CACHE_TTL_S``, stays as the fallback for a missed event):

- ``credential`` ``{slug, credentialId}``: drop those cached values;
- ``token`` ``{tokenId}``: drop that token from the authentication cache;
- ``approval`` ``{id}``: wake long polls (``GET /api/approvals/{id}?wait=``) on it;
- ``registry`` ``{slug, contentHash}``: reload that folder from the shared integrations
  directory (a folder that did not change raises nothing here). The reload's
  own registry events are delivered *here only* (MCP's ``tools/list_changed`` and the web
  page see them) and never sent back out: a folder that keeps failing to load would
  otherwise bounce between replicas for ever;
- ``resync`` (after the listener reconnected): drop every cached credential and token,
  wake every long poll, and rescan the integrations directory.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
from collections.abc import Coroutine, Iterator
from typing import TYPE_CHECKING, Any

from bollard.platform.events import Event

if TYPE_CHECKING:
    from bollard.platform.runtime import Runtime

log = logging.getLogger("bollard.replicas")

#: set while registry changes need not reach other replicas (they made the change, or
#: the start-up load): their events stay local
reloading_for_peer: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "bollard_reloading_for_peer", default=False
)


@contextlib.contextmanager
def local_registry_events() -> Iterator[None]:
    """Within it, registry events are delivered in this process only (see above)."""
    token = reloading_for_peer.set(True)
    try:
        yield
    finally:
        reloading_for_peer.reset(token)


class PeerEvents:
    """Applies other replicas' events to one runtime (see the module docstring)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._tasks: set[asyncio.Task[None]] = set()
        self.reloads = 0  # reloads done for other replicas (tests, /metrics)

    def install(self) -> None:
        bus = self.runtime.events
        bus.on(("credential", "token", "approval", "registry"), self._on_event)

    def _on_event(self, event: Event) -> None:
        rt = self.runtime
        if event.topic == "resync":
            rt.credentials.forget_all()
            rt.tokens.forget_all()
            rt.approvals.events.wake()
            self._spawn(self._rescan())
            return
        if not event.remote:
            return
        p = event.payload
        if event.topic == "credential" and isinstance(p.get("slug"), str):
            cid = p.get("credentialId")
            rt.credentials.forget(p["slug"], cid if isinstance(cid, str) else None)
        elif event.topic == "token" and isinstance(p.get("tokenId"), str):
            rt.tokens.forget(p["tokenId"])
        elif event.topic == "approval" and isinstance(p.get("id"), str):
            rt.approvals.events.wake(p["id"])
        elif event.topic == "registry" and isinstance(p.get("slug"), str):
            # Always re-read: the same content hash may come with a new load error. An
            # unchanged folder raises no event here (the registry keeps the entry).
            self._spawn(self._reload(p["slug"]))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        try:
            task = asyncio.get_running_loop().create_task(coro)
        except RuntimeError:  # no loop: the runtime is stopping
            coro.close()
            return
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reload(self, slug: str) -> None:
        if not slug or "/" in slug or "\\" in slug or slug.startswith("."):  # a folder name, never a path
            return
        try:
            with local_registry_events():
                await self.runtime.registry.reload_async(slug)
            self.reloads += 1
        except Exception:
            log.exception("reloading %s for another replica failed", slug)

    async def _rescan(self) -> None:
        try:
            with local_registry_events():
                await self.runtime.registry.load_all_async()
        except Exception:
            log.exception("rescanning the integrations directory after a reconnect failed")
