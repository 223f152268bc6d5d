"""The registry: every integration folder, its last good version, and live reload.

DESIGN §10. At start every folder of the integrations directory is loaded; a bad folder
is a reported load error, never fatal. The watcher (watchfiles) reloads a folder when
any file in it changes, debounced: a valid change swaps in a new immutable
:class:`~bollard.platform.packages.IntegrationVersion` (calls in flight keep the one they
started with); an invalid change keeps the last good version serving and records the
error; a deleted folder disappears.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import watchfiles

from bollard.platform.errors import IntegrationUnavailable, PackageError
from bollard.platform.packages import IntegrationVersion, load_folder
from bollard.platform.redact import escape_controls

log = logging.getLogger("bollard.registry")


@dataclass(frozen=True)
class IntegrationEntry:
    """One folder: its last good ``version`` (or ``None``) and its current ``errors``.

    ``errors`` is empty when the folder as it is on disk loaded; otherwise it holds the
    reasons, while ``version`` (when set) keeps serving.
    """

    slug: str
    path: Path
    version: IntegrationVersion | None
    errors: tuple[str, ...] = ()

    @property
    def status_error(self) -> str | None:
        return "; ".join(self.errors) if self.errors else None


ChangeListener = Callable[[str, IntegrationEntry | None], None]


def _ignored(name: str) -> bool:
    return name.startswith(".") or name == "__pycache__"


# What reading a folder gave: a version, its load errors, or None (the folder is gone).
_Loaded = IntegrationVersion | tuple[str, ...] | None


def _read(path: Path) -> _Loaded:
    """Read and validate one folder (thread-safe: touches no registry state). Any
    exception is that folder's load error (a 3,000-link attribute chain raises
    ``RecursionError`` in the compiler; DESIGN §4.6)."""
    try:
        if not (path.is_dir() or path.is_symlink()):
            return None
        return load_folder(path)
    except PackageError as e:
        return tuple(e.errors)
    except RecursionError:
        return ("the folder's files are nested too deeply to load (RecursionError); flatten them",)
    except Exception as e:  # MemoryError, an OSError mid-read, a bug: still this folder's error
        log.exception("loading %s raised", escape_controls(path.name))
        return (f"the folder could not be loaded ({type(e).__name__}); see the server log",)


@dataclass
class Registry:
    """Integrations loaded from ``root``; look them up with :meth:`get`."""

    root: Path
    _entries: dict[str, IntegrationEntry] = field(default_factory=dict)
    _listeners: list[ChangeListener] = field(default_factory=list)

    def add_listener(self, listener: ChangeListener) -> None:
        """Call ``listener(slug, entry_or_None)`` after each change of an entry."""
        self._listeners.append(listener)

    def get(self, slug: str) -> IntegrationEntry | None:
        return self._entries.get(slug)

    def require(self, slug: str) -> IntegrationEntry:
        """The entry for ``slug``; raises :class:`IntegrationUnavailable`
        ``unknown_integration`` (404) when no such folder is installed."""
        entry = self._entries.get(slug)
        if entry is None:
            raise IntegrationUnavailable(
                "unknown_integration",
                f"no integration '{slug[:80]}' is installed; GET /api/integrations lists the installed ones",
            )
        return entry

    def require_version(self, slug: str) -> IntegrationVersion:
        """The serving version of ``slug``; raises ``unknown_integration`` (404) or
        ``integration_error`` (409, the folder never loaded, with its load errors)."""
        entry = self.require(slug)
        if entry.version is None:
            raise IntegrationUnavailable(
                "integration_error",
                f"integration '{slug}' failed to load: {entry.status_error}; fix its folder "
                "(bollard validate shows every problem)",
            )
        return entry.version

    def entries(self) -> list[IntegrationEntry]:
        return [self._entries[k] for k in sorted(self._entries)]

    def load_all(self) -> None:
        """Load every folder under ``root`` (creating ``root`` if missing)."""
        self.root.mkdir(parents=True, exist_ok=True)
        seen = set()
        for child in sorted(self.root.iterdir()):
            if _ignored(child.name) or not (child.is_dir() or child.is_symlink()):
                continue
            seen.add(child.name)
            self.reload(child.name)
        for slug in set(self._entries) - seen:
            self._remove(slug)

    async def load_all_async(self) -> None:
        """:meth:`load_all` with each folder read and validated in a worker thread, so
        the event loop keeps serving (DESIGN §10); entries change on the loop's thread."""
        self.root.mkdir(parents=True, exist_ok=True)
        children = await asyncio.to_thread(lambda: sorted(self.root.iterdir()))
        seen = set()
        for child in children:
            if _ignored(child.name) or not (child.is_dir() or child.is_symlink()):
                continue
            seen.add(child.name)
            await self.reload_async(child.name)
        for slug in set(self._entries) - seen:
            self._remove(slug)

    def reload(self, slug: str) -> IntegrationEntry | None:
        """Reload one folder from disk and return its entry (``None`` once removed)."""
        return self._apply(slug, _read(self.root / slug))

    async def reload_async(self, slug: str) -> IntegrationEntry | None:
        """:meth:`reload` with the folder read, parsed and compiled in a worker thread (a
        500 KB manifest must not stall the loop); the entry swap and the listeners run
        here, on the caller's (the event loop's) thread."""
        return self._apply(slug, await asyncio.to_thread(_read, self.root / slug))

    def _apply(self, slug: str, loaded: _Loaded) -> IntegrationEntry | None:
        path = self.root / slug
        if loaded is None:
            self._remove(slug)
            return None
        previous = self._entries.get(slug)
        if isinstance(loaded, tuple):
            entry = IntegrationEntry(slug, path, previous.version if previous else None, loaded)
            log.warning("integration %s failed to load: %s", slug, escape_controls("; ".join(loaded)))
        else:
            version = loaded
            if (
                previous
                and previous.version
                and previous.version.content_hash == version.content_hash
                and not previous.errors
            ):
                return previous
            entry = IntegrationEntry(slug, path, version)
            log.info(
                "integration %s loaded (version %s, %s)", slug, version.version, version.content_hash[:12]
            )
        self._entries[slug] = entry
        self._notify(slug, entry)
        return entry

    def _remove(self, slug: str) -> None:
        if self._entries.pop(slug, None) is not None:
            log.info("integration %s removed", slug)
            self._notify(slug, None)

    def _notify(self, slug: str, entry: IntegrationEntry | None) -> None:
        for listener in self._listeners:
            try:
                listener(slug, entry)
            except Exception:  # a listener must not stop the reload
                log.exception("registry listener failed for %s", slug)

    def slugs_for(self, changes: set[tuple[watchfiles.Change, str]]) -> set[str]:
        """The folder names touched by a batch of watchfiles changes."""
        root = self.root.resolve()
        slugs = set()
        for _, raw in changes:
            try:
                rel = Path(raw).resolve().relative_to(root)
            except ValueError:
                continue
            if rel.parts and not _ignored(rel.parts[0]):
                slugs.add(rel.parts[0])
        return slugs

    async def watch(self, stop: asyncio.Event, *, debounce_ms: int = 150) -> None:
        """Reload changed folders until ``stop`` is set (uses inotify where available)."""
        self.root.mkdir(parents=True, exist_ok=True)
        async for changes in watchfiles.awatch(
            self.root, debounce=debounce_ms, step=25, stop_event=stop, recursive=True
        ):
            for slug in sorted(self.slugs_for(changes)):
                try:
                    await self.reload_async(slug)
                except Exception:  # one folder never stops the watcher (hardening item 9)
                    log.exception(
                        "reloading integration %s failed; the watcher goes on", escape_controls(slug)
                    )
