"""Warm sandbox workers, so an integration's first call does not wait for a cold start.

A worker's start (spawn, isolation, the interpreter's imports, loading the connector)
took ~195 ms against ~5 ms for a call on a warm worker (performance issue 15). Under
``bollard serve`` the :class:`Warmer` starts one worker per (integration version,
credential) as soon as the integration is loaded, and again when its credentials are
set (the ``registry`` and ``credential`` events, platform/events.py), at most
``BOLLARD_WARM_WORKERS`` of them (0: none). A warm worker is kept while idle
(``SandboxPool.prewarm``: its group keeps one idle worker past the idle timeout) until
its version is replaced or removed.

Which credentials: ``default`` for ``authMethod: none``; otherwise each stored
credential of the integration (its workers serve one credential only, DESIGN §4.5).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from bollard.platform.credentials import DEFAULT_CREDENTIAL_ID
from bollard.platform.events import Event

if TYPE_CHECKING:
    from bollard.platform.runtime import Runtime

log = logging.getLogger("bollard.warmup")


class Warmer:
    """Starts warm workers for loaded integrations; ``start()`` once the runtime runs."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.cap = runtime.settings.warm_workers
        self._warm: dict[tuple[str, str], str] = {}  # (slug, credential id) -> content hash
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Warm every loaded integration now, and each one loaded or given credentials later."""
        if self.cap <= 0:
            return
        self.runtime.events.on(("registry", "credential"), self._on_event)
        for entry in self.runtime.registry.entries():
            self._schedule(entry.slug, None)

    def warmed(self) -> dict[tuple[str, str], str]:
        """(slug, credential id) → the content hash of the version warmed."""
        return dict(self._warm)

    def _on_event(self, event: Event) -> None:
        slug = event.payload.get("slug")
        if isinstance(slug, str):
            credential = event.payload.get("credentialId")
            self._schedule(slug, credential if isinstance(credential, str) else None)

    def _schedule(self, slug: str, credential_id: str | None) -> None:
        task = asyncio.get_running_loop().create_task(self._run(slug, credential_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, slug: str, credential_id: str | None) -> None:
        try:
            await self._warm_one(slug, credential_id)
        except Exception as e:  # warming is an optimisation: a failure only costs a cold start
            log.warning("could not warm a sandbox worker for %s: %s", slug, type(e).__name__)

    async def _warm_one(self, slug: str, credential_id: str | None) -> None:
        rt = self.runtime
        entry = rt.registry.get(slug)
        version = entry.version if entry is not None else None
        if version is None or version.connector_source is None:
            for key in [k for k in self._warm if k[0] == slug]:
                del self._warm[key]  # removed or SQL-only: its slots are free again
            return
        if credential_id is not None:
            ids = [credential_id]
        elif version.manifest.auth_method == "none":
            ids = [DEFAULT_CREDENTIAL_ID]
        else:
            ids = [c.credential_id for c in await rt.credentials.describe(slug)]
        operations = version.manifest.operations
        limits = rt.execution.limits.sandbox(version, operations[0] if operations else None, None)
        for cid in ids:
            key = (slug, cid)
            if self._warm.get(key) == version.content_hash:
                continue
            if key not in self._warm and len(self._warm) >= self.cap:
                return  # BOLLARD_WARM_WORKERS reached
            self._warm[key] = version.content_hash
            rt.pool.prewarm(
                key=f"{slug}:{version.content_hash}",
                tenant=cid,
                source=version.connector_source,
                limits=limits,
                filename=version.connector_file or "connector.py",  # the worker kind (Python, JS)
            )

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
