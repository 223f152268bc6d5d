"""Installing a validated upload, and uninstalling (DESIGN §10).

:class:`Installer` validates an upload completely off the event loop
(:func:`.archive.read_zip` / :func:`.archive.read_file_set`, then the folder loader's
:func:`~bollard.platform.packages.build_version`), checks it may replace what is
installed (``replace=true`` and a higher ``version``, else 409 ``conflict``), writes it to
a dot-prefixed temporary folder inside the integrations directory (the registry ignores
it), fsyncs the files and the folder, renames it into place and reloads the registry:
the upload and the folder drop give the same state.
"""

from __future__ import annotations

import asyncio
import errno
import os
import secrets
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bollard.platform.credential_fields import credential_fields
from bollard.platform.errors import ApiError, PackageError
from bollard.platform.manifest import slug_error
from bollard.platform.packages import IntegrationVersion, build_version
from bollard.platform.upload.archive import read_file_set, read_zip, shown

if TYPE_CHECKING:
    from bollard.platform.runtime import Runtime


def choose_slug(slug: str | None, top: str | None) -> str:
    """The slug from the form field, else the top folder's name; raises :class:`PackageError`."""
    chosen = slug if slug else top
    if not chosen:
        raise PackageError(
            ["slug: not given; send a 'slug' form field or put the files in one top folder named after it"]
        )
    if slug_error(chosen) is not None:
        where = "slug" if slug else f"top folder '{shown(chosen)}'"
        raise PackageError(
            [
                f"{where}: '{shown(chosen)}' is not a valid slug: 1-64 of lower-case letters, digits, "
                "'-' and '_', starting with a letter or digit"
            ]
        )
    return chosen


def prepare(
    root: Path, *, zip_data: bytes | None, file_set: list[tuple[str, bytes]] | None, slug: str | None
) -> IntegrationVersion:
    """Read and validate an upload completely (blocking: run it off the event loop)."""
    files, top = read_zip(zip_data) if zip_data is not None else read_file_set(file_set or [])
    chosen = choose_slug(slug, top)
    return build_version(chosen, root / chosen, files)


def preview(version: IntegrationVersion, replaces: int | None) -> dict[str, Any]:
    """What an upload installs (the ``dryRun`` answer, and the 201 body): title, version,
    operations with read/write and approval, allowed hosts, credential fields, warnings."""
    m = version.manifest
    return {
        "slug": version.slug,
        "title": m.title,
        "description": m.description,
        "version": m.version,
        "type": m.type,
        "authMethod": m.auth_method,
        "contentHash": version.content_hash,
        "replaces": replaces,
        "operations": [
            {
                "name": op.name,
                "title": op.title or op.name,
                "description": op.description,
                "operationType": op.operation_type,
                "requiresApproval": op.needs_approval,
            }
            for op in m.all_operations
        ],
        "allowedHosts": m.allowed_hosts,
        "credentialFields": credential_fields(m),
        "warnings": version.warning_messages,
        "files": [{"name": n, "size": len(d)} for n, d in sorted(version.files.items())],
    }


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _discard(path: Path) -> None:
    """Remove a folder (or a link to one) that is already out of the registry's sight."""
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


def _taken(slug: str) -> ApiError:
    return ApiError(
        "conflict",
        f"integration '{slug}' was installed by another upload meanwhile; send replace=true "
        "with a higher version to replace it",
        status=409,
    )


def write_package(root: Path, slug: str, files: dict[str, bytes]) -> bool:
    """Install ``files`` as ``root/slug`` (blocking). Written to a dot-prefixed temporary
    folder in ``root``, every file and the folder fsynced, then renamed into place; an
    existing folder is renamed aside first and removed after. Returns whether it
    replaced one. The rename is the arbiter between processes: a folder that appeared
    meanwhile answers 409 ``conflict``."""
    token = secrets.token_hex(6)
    tmp = root / f".upload-{slug}-{token}"
    os.mkdir(tmp, 0o755)
    old: Path | None = None
    try:
        for name, data in sorted(files.items()):
            fd = os.open(tmp / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        _fsync_dir(tmp)
        dest = root / slug
        if os.path.lexists(dest):
            old = root / f".replaced-{slug}-{token}"
            os.rename(dest, old)
        try:
            os.rename(tmp, dest)
        except OSError as e:
            if old is not None:
                os.rename(old, dest)
                old = None
            if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
                raise _taken(slug) from None
            raise
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        _discard(old)
        return True
    return False


def remove_package(root: Path, slug: str) -> bool:
    """Uninstall ``root/slug`` (blocking): renamed aside (dot-prefixed) at once, then
    removed. Returns whether there was a folder."""
    dest = root / slug
    if not os.path.lexists(dest):
        return False
    aside = root / f".removed-{slug}-{secrets.token_hex(6)}"
    os.rename(dest, aside)
    _fsync_dir(root)
    _discard(aside)
    return True


class Installer:
    """Installs and uninstalls packages for a runtime, one slug at a time.

    A per-slug :class:`asyncio.Lock` orders the uploads of one slug in this process (the
    second of two concurrent uploads sees the first installed and answers 409); the
    rename in :func:`write_package` arbitrates between processes.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self._locks: dict[str, asyncio.Lock] = {}

    def _lock(self, slug: str) -> asyncio.Lock:
        return self._locks.setdefault(slug, asyncio.Lock())

    def _replaces(self, version: IntegrationVersion, replace: bool) -> tuple[bool, int | None]:
        """``(exists, installed_version)``; raises 409 ``conflict`` when the upload may
        not replace what is installed (DESIGN §10: ``replace=true`` and a higher version)."""
        registry = self.runtime.registry
        entry = registry.get(version.slug)
        exists = entry is not None or os.path.lexists(registry.root / version.slug)
        installed = entry.version.version if entry is not None and entry.version is not None else None
        if not exists:
            return False, None
        if not replace:
            shown_version = f" (version {installed})" if installed is not None else ""
            raise ApiError(
                "conflict",
                f"slug: integration '{version.slug}' is already installed{shown_version}; send "
                "replace=true with a higher config.json version to replace it",
                status=409,
            )
        if installed is not None and version.version <= installed:
            raise ApiError(
                "conflict",
                f"config.json: version {version.version} is not higher than the installed version "
                f"{installed} of '{version.slug}'; raise 'version' to replace it",
                status=409,
            )
        return True, installed

    async def install(
        self,
        *,
        zip_data: bytes | None = None,
        file_set: list[tuple[str, bytes]] | None = None,
        slug: str | None = None,
        replace: bool = False,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Validate an upload completely, then (unless ``dry_run``) install it and reload.

        Returns :func:`preview` plus ``dryRun``, ``installed`` and ``replaced``. Raises
        :class:`PackageError` (400) or :class:`ApiError` ``conflict`` (409); nothing is
        written then.
        """
        root = self.runtime.registry.root
        version = await asyncio.to_thread(prepare, root, zip_data=zip_data, file_set=file_set, slug=slug)
        async with self._lock(version.slug):
            exists, installed = self._replaces(version, replace)
            body = {"dryRun": dry_run, "installed": False, "replaced": False, **preview(version, installed)}
            if dry_run:
                return body
            root.mkdir(parents=True, exist_ok=True)
            replaced = await asyncio.to_thread(write_package, root, version.slug, version.files)
            self.runtime.registry.reload(version.slug)
        return {**body, "installed": True, "replaced": replaced or exists}

    async def uninstall(self, slug: str, *, purge_credentials: bool = False) -> dict[str, Any]:
        """Remove ``slug``'s folder and its registry entry; its pending approvals expire
        with ``approval_stale``; its credentials are kept unless ``purge_credentials``.
        Raises :class:`IntegrationUnavailable` ``unknown_integration`` (404)."""
        registry = self.runtime.registry
        valid = slug_error(slug) is None
        async with self._lock(slug):
            entry = registry.get(slug) if valid else None
            if entry is None and not (valid and os.path.lexists(registry.root / slug)):
                registry.require(slug)  # raises unknown_integration
            version = entry.version.version if entry is not None and entry.version is not None else None
            await asyncio.to_thread(remove_package, registry.root, slug)
            registry.reload(slug)
            expired = await self.runtime.approvals.expiry.expire_integration(slug)
            purged: list[str] = []
            if purge_credentials:
                for info in await self.runtime.credentials.describe(slug):
                    if await self.runtime.credentials.delete(slug, info.credential_id):
                        purged.append(info.credential_id)
        return {
            "slug": slug,
            "uninstalled": True,
            "version": version,
            "approvalsExpired": expired,
            "credentialsPurged": purged,
        }
