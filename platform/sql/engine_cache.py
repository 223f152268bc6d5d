"""The cache of SQL engines: one per (integration slug, credential id), rebuilt when the
connection config or the credential values change, disposed at shutdown (DESIGN §5)."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .engines import EngineHandle, build_engine


def fingerprint(
    engine: str, connection_config: Mapping[str, Any], credentials: Mapping[str, Any], *extra: Any
) -> str:
    """A digest of everything an engine is built from (never logged or returned)."""
    blob = json.dumps(
        [engine, connection_config, credentials, [str(e) for e in extra]], sort_keys=True, default=str
    )
    return hashlib.sha256(blob.encode()).hexdigest()


@dataclass
class _Entry:
    fingerprint: str
    handle: EngineHandle


class EngineCache:
    """Engines keyed by (integration slug, credential id) (DESIGN §5).

    ``get`` returns the cached engine while the connection config and credential
    values are unchanged; otherwise it builds a new one and disposes the old (calls in
    flight on the old engine finish; its connections close when returned).
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._lock = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(
        self,
        slug: str,
        credential_id: str,
        *,
        engine: str,
        connection_config: Mapping[str, Any],
        credentials: Mapping[str, Any],
        integration_dir: Path | None = None,
        data_dir: Path | None = None,
        allowed_roots: Sequence[Path] | None = None,
        allow_privileged_roles: bool = False,
    ) -> EngineHandle:
        """The engine for ``(slug, credential_id)``, built or rebuilt as needed.

        Raises SqlError("config_error") when the settings cannot make an engine.
        """
        fp = fingerprint(
            engine,
            connection_config,
            credentials,
            integration_dir,
            data_dir,
            list(allowed_roots or []),
            allow_privileged_roles,
        )
        key = (slug, credential_id)
        entry = self._entries.get(key)
        if entry is not None and entry.fingerprint == fp:
            return entry.handle
        async with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.fingerprint == fp:
                return entry.handle
            handle = build_engine(
                engine,
                connection_config,
                credentials,
                slug=slug,
                integration_dir=integration_dir,
                data_dir=data_dir,
                allowed_roots=allowed_roots,
                allow_privileged_roles=allow_privileged_roles,
            )
            self._entries[key] = _Entry(fp, handle)
        if entry is not None:
            await entry.handle.dispose()
        return handle

    async def invalidate(self, slug: str, credential_id: str | None = None) -> None:
        """Dispose the engines of ``slug`` (one credential, or all when None)."""
        async with self._lock:
            keys = [
                k for k in self._entries if k[0] == slug and (credential_id is None or k[1] == credential_id)
            ]
            entries = [self._entries.pop(k) for k in keys]
        await _dispose(entries)

    async def dispose_all(self) -> None:
        """Dispose every engine (shutdown)."""
        async with self._lock:
            entries = list(self._entries.values())
            self._entries.clear()
        await _dispose(entries)


async def _dispose(entries: Sequence[_Entry]) -> None:
    results = await asyncio.gather(*(e.handle.dispose() for e in entries), return_exceptions=True)
    del results  # disposal failures (a dead server) do not stop shutdown
