"""The file store behind ``ctx.files`` (DESIGN §3): bytes in the data directory,
metadata in the state database, served by ``GET /api/files/{fileId}``.

A file's bytes are written to ``<data_dir>/files/<id>`` (0600, in a 0700 directory;
written to a temporary name, fsynced and renamed, off the event loop), so the name a
connector gives never reaches the file system; the cleaned name is kept for
``Content-Disposition`` (:mod:`.names`). Each file expires ``file_retention_hours``
after it was stored. The ``files.retention`` job (``runtime.py``; once per interval,
whichever replica runs it) deletes the expired rows and the bytes in its own data
directory; every replica also runs :meth:`FileStore.start_orphan_sweep`, which deletes
the bytes in *its* data directory whose row is gone, so replicas with separate data
directories (DESIGN §12: the data directory is per replica) do not keep expired bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bollard.platform.store.tables import files

log = logging.getLogger("bollard.files")
#: bytes younger than this are never orphans: ``save`` writes them before it commits
#: their row, and another replica may share the directory
ORPHAN_GRACE_S = 3600.0
ORPHAN_BATCH = 500  # ids looked up per query


@dataclass(frozen=True)
class FileOwner:
    """Who a stored file belongs to: the call that stored it (``token_id``: the caller's
    token, which may read it back with admins; ``None`` for admins only; ``approval_id``:
    the approved write that stored it, whose requester may read it too)."""

    integration: str
    operation: str
    credential_id: str | None = None
    token_id: str | None = None
    approval_id: str | None = None


@dataclass(frozen=True)
class StoredFile:
    """One file's metadata and where its bytes are."""

    id: str
    path: Path
    file_name: str
    content_type: str
    size: int
    token_id: str | None
    integration: str
    approval_id: str | None = None


def _write(path: Path, data: bytes) -> str:
    """Write ``data`` to ``path`` (temporary name, fsync, rename); its SHA-256 hex."""
    temporary = path.with_name(f".{path.name}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    return hashlib.sha256(data).hexdigest()


class FileStore:
    """Stores, finds and expires files. ``directory`` is created 0700 on first write;
    ``base_url`` (``http://host:port`` or the operator's public URL) prefixes each
    file's ``url``; ``retention_hours`` is how long a file is kept."""

    def __init__(self, engine: AsyncEngine, directory: Path, *, base_url: str, retention_hours: int) -> None:
        self._engine = engine
        self.directory = directory
        self.base_url = base_url.rstrip("/")
        self.retention = timedelta(hours=retention_hours)
        self._orphan_sweep: asyncio.Task[None] | None = None

    def url_for(self, file_id: str) -> str:
        """The URL a FileReference carries: ``{base_url}/api/files/{id}``."""
        return f"{self.base_url}/api/files/{file_id}"

    def _path(self, file_id: str) -> Path:
        return self.directory / str(uuid.UUID(file_id))  # only ever a UUID under the directory

    async def save(
        self, data: bytes, *, file_name: str, content_type: str, owner: FileOwner
    ) -> dict[str, Any]:
        """Write ``data`` (name and type already cleaned) and record it; Tale's
        FileReference ``{fileId, url, fileName, contentType, size}``. ``OSError`` when
        the data directory cannot be written."""
        file_id = str(uuid.uuid4())
        now = datetime.now(UTC)
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self._path(file_id)
        digest = await asyncio.to_thread(_write, path, data)
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    files.insert().values(
                        id=file_id,
                        integration=owner.integration[:64],
                        operation=owner.operation[:128],
                        credential_id=(owner.credential_id or "")[:64] or None,
                        token_id=owner.token_id,
                        approval_id=owner.approval_id,
                        file_name=file_name,
                        content_type=content_type,
                        size=len(data),
                        sha256=digest,
                        created_at=now,
                        expires_at=now + self.retention,
                    )
                )
        except BaseException:
            with contextlib.suppress(OSError):
                path.unlink()
            raise
        return {
            "fileId": file_id,
            "url": self.url_for(file_id),
            "fileName": file_name,
            "contentType": content_type,
            "size": len(data),
        }

    async def get(self, file_id: str) -> StoredFile | None:
        """The unexpired file ``file_id`` whose bytes exist, else ``None`` (also for an
        id that is not a UUID)."""
        try:
            path = self._path(file_id)
        except ValueError:
            return None
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(files).where(files.c.id == str(uuid.UUID(file_id))))).first()
        if row is None:
            return None
        m = row._mapping
        expires = m["expires_at"]
        if expires.tzinfo is None:  # SQLite hands back naive UTC
            expires = expires.replace(tzinfo=UTC)
        if expires <= datetime.now(UTC) or not path.is_file():
            return None
        return StoredFile(
            id=m["id"],
            path=path,
            file_name=m["file_name"],
            content_type=m["content_type"],
            size=m["size"],
            token_id=m["token_id"],
            integration=m["integration"],
            approval_id=m["approval_id"],
        )

    async def prune(self) -> int:
        """Delete expired files (rows and bytes); return how many."""
        now = datetime.now(UTC)
        async with self._engine.begin() as conn:
            ids = [
                r[0] for r in (await conn.execute(select(files.c.id).where(files.c.expires_at <= now))).all()
            ]
            if ids:
                await conn.execute(delete(files).where(files.c.id.in_(ids)))

        def unlink() -> None:
            for file_id in ids:
                with contextlib.suppress(OSError, ValueError):
                    self._path(file_id).unlink()

        await asyncio.to_thread(unlink)
        return len(ids)

    def _old_entries(self, older_than: float) -> tuple[dict[str, Path], list[Path]]:
        """The directory's files last modified before ``older_than`` (epoch s): file id ->
        path, and the temporary files of writes that never finished."""
        stored: dict[str, Path] = {}
        unfinished: list[Path] = []
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return stored, unfinished
        for entry in entries:
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                if entry.stat(follow_symlinks=False).st_mtime >= older_than:
                    continue
            except OSError:  # removed meanwhile
                continue
            if entry.name.startswith(".") and entry.name.endswith(".tmp"):
                unfinished.append(Path(entry.path))
                continue
            with contextlib.suppress(ValueError):
                if str(uuid.UUID(entry.name)) == entry.name:
                    stored[entry.name] = Path(entry.path)
        return stored, unfinished

    async def remove_orphans(self, grace_s: float = ORPHAN_GRACE_S) -> int:
        """Delete the bytes in this replica's directory that have no row any more (the
        retention job deleted it, perhaps on another replica) and temporary files of
        writes that never finished, when last modified more than ``grace_s`` seconds
        ago; return how many. Names that are not file ids are left alone."""
        stored, orphans = await asyncio.to_thread(self._old_entries, time.time() - grace_s)
        ids = list(stored)
        for start in range(0, len(ids), ORPHAN_BATCH):
            batch = ids[start : start + ORPHAN_BATCH]
            async with self._engine.connect() as conn:
                kept = set((await conn.scalars(select(files.c.id).where(files.c.id.in_(batch)))).all())
            orphans += [stored[i] for i in batch if i not in kept]

        def unlink() -> int:
            removed = 0
            for path in orphans:
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed += 1
            return removed

        return await asyncio.to_thread(unlink)

    def start_orphan_sweep(self, interval_s: float) -> None:
        """Run :meth:`remove_orphans` now and then every ``interval_s`` seconds in this
        process (not a job: each replica sweeps its own directory); :meth:`close` stops it."""

        async def loop() -> None:
            while True:
                try:
                    removed = await self.remove_orphans()
                    if removed:
                        log.info("file store: removed %d files whose record is gone", removed)
                except Exception:
                    log.exception("removing orphan files failed")
                await asyncio.sleep(interval_s)

        if self._orphan_sweep is None:
            self._orphan_sweep = asyncio.get_running_loop().create_task(loop())

    async def close(self) -> None:
        """Stop the orphan sweep."""
        if self._orphan_sweep is not None:
            self._orphan_sweep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._orphan_sweep
            self._orphan_sweep = None
