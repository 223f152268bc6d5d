"""Reading and validating an integration package: the files of one integration.

The same checks serve a folder in the integrations directory and an uploaded zip, so a
folder drop and an upload give the same state (DESIGN §10). A package is a mapping of
file name to bytes; :func:`build_version` validates it completely (manifest, connector
compile, icon content) and returns an immutable :class:`IntegrationVersion`.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bollard.platform.errors import PackageError
from bollard.platform.lint import Lint, lint_package
from bollard.platform.manifest import (
    MANIFEST_MAX_BYTES,
    Manifest,
    ManifestError,
    ManifestIssue,
    parse_manifest_bytes,
    slug_error,
)

CONNECTOR_FILE = "connector.py"
# Tale's connectors run unchanged in the Deno runtime (DESIGN §3); one per package.
CONNECTOR_FILES = (CONNECTOR_FILE, "connector.ts", "connector.js")
CONFIG_FILE = "config.json"
CONNECTOR_MAX_BYTES = 512 * 1024
ICON_MAX_BYTES = 256 * 1024
ICON_NAMES = ("icon.svg", "icon.png", "icon.jpg", "icon.jpeg", "icon.webp")
SEED_MAX_BYTES = 512 * 1024
README_NAMES = ("README.md",)

ICON_MEDIA_TYPES = {
    "svg": "image/svg+xml",
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
}


@dataclass(frozen=True)
class IntegrationVersion:
    """One loaded, valid version of an integration. Never mutated: a reload makes a new one.

    ``content_hash`` is the SHA-256 of every file's name and bytes, the identity an
    approval binds (DESIGN §6) and the sandbox pool keys its workers by. ``warnings`` are
    the manifest's non-fatal issues, ``lints`` what :mod:`bollard.platform.lint` found
    (warnings here; ``bollard validate`` fails on the ones of severity ``error``).
    """

    slug: str
    path: Path
    manifest: Manifest
    content_hash: str
    files: dict[str, bytes] = field(repr=False)
    warnings: tuple[ManifestIssue, ...] = ()
    lints: tuple[Lint, ...] = ()
    loaded_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @functools.cached_property
    def connector_file(self) -> str | None:
        """``connector.py``, ``connector.ts`` or ``connector.js``: the package's connector
        (computed once: every call asks)."""
        return next((name for name in CONNECTOR_FILES if name in self.files), None)

    @functools.cached_property
    def connector_source(self) -> str | None:
        """The connector's text, decoded once per version: one ``str`` for every call, so
        the sandbox pool finds its worker group by identity, not by comparing sources."""
        name = self.connector_file
        raw = self.files.get(name) if name is not None else None
        return raw.decode("utf-8") if raw is not None else None

    @property
    def warning_messages(self) -> list[str]:
        """Every warning as text, as ``bollard validate`` prints it and the detail lists it:
        the manifest's (``config.json: path: …``), then the lints."""
        return [f"{CONFIG_FILE}: {w}" for w in self.warnings] + [lint.message for lint in self.lints]

    @property
    def icon_name(self) -> str | None:
        return next((n for n in ICON_NAMES if n in self.files), None)

    @property
    def version(self) -> int:
        return self.manifest.version


def content_hash(files: dict[str, bytes]) -> str:
    """SHA-256 over the sorted file names and contents (length-prefixed, unambiguous)."""
    h = hashlib.sha256()
    for name in sorted(files):
        data = files[name]
        h.update(f"{len(name)}:{name}:{len(data)}:".encode())
        h.update(data)
    return h.hexdigest()


def seed_file_name(manifest: Manifest) -> str | None:
    """The demo seed script named by ``sqlConnectionConfig.options.seedFile``, if any."""
    cfg = manifest.sql_connection_config
    name = cfg.options.get("seedFile") if cfg is not None else None
    return name if isinstance(name, str) else None


_SVG_FORBIDDEN = [
    (re.compile(rb"<\s*script", re.I), "contains a <script> element"),
    (re.compile(rb"\son[a-z]+\s*=", re.I), "contains an event-handler attribute (on…=)"),
    (re.compile(rb"<\s*foreignObject", re.I), "contains a <foreignObject> element"),
    (re.compile(rb"<!ENTITY", re.I), "declares XML entities"),
    (re.compile(rb"javascript:", re.I), "contains a javascript: URL"),
    (
        re.compile(rb"""(?:href|src)\s*=\s*["']\s*(?!#|data:image/)[^"']+""", re.I),
        "references an external resource (only #fragment and data:image/ links are allowed)",
    ),
    (re.compile(rb"url\(\s*['\"]?\s*(?!#|data:image/)", re.I), "references an external resource in url()"),
    (re.compile(rb"@import", re.I), "contains a CSS @import"),
]


def icon_error(name: str, data: bytes) -> str | None:
    """Check an icon by content, not name (DESIGN §10); return a reason or ``None``."""
    if len(data) > ICON_MAX_BYTES:
        return f"{name} is {len(data)} bytes; the limit is {ICON_MAX_BYTES} bytes"
    ext = name.rsplit(".", 1)[1]
    if ext == "png":
        ok = data.startswith(b"\x89PNG\r\n\x1a\n")
    elif ext in ("jpg", "jpeg"):
        ok = data.startswith(b"\xff\xd8\xff")
    elif ext == "webp":
        ok = data[:4] == b"RIFF" and data[8:12] == b"WEBP"
    else:
        head = data[:4096].lstrip().lower()
        ok = b"<svg" in head and (
            head.startswith(b"<svg")
            or head.startswith(b"<?xml")
            or head.startswith(b"<!--")
            or head.startswith(b"<!doctype svg")
        )
        if ok:
            for pattern, reason in _SVG_FORBIDDEN:
                if pattern.search(data):
                    return f"{name} {reason}; icons must be static images"
    if not ok:
        return f"{name} is not a valid {ext.upper()} image (checked by content)"
    return None


def compile_errors(source: str, filename: str = CONNECTOR_FILE) -> list[str]:
    """Check a connector with the sandbox's load-time policy for its kind (RestrictedPython
    for ``connector.py``; :func:`bollard.sandbox.js.source.check_source` and then Deno's own
    parse, :func:`bollard.sandbox.js.check.deno_load_errors`, for ``connector.ts``/``.js``);
    return its errors (line numbers; code nested too deeply for the compiler is one error,
    not an exception). Blocking: call it off the event loop."""
    from bollard.sandbox.errors import ConnectorCompileError
    from bollard.sandbox.kinds import kind_for

    try:
        kind_for(filename).check(source, filename)
        if filename != CONNECTOR_FILE:
            # Deno's own parse, in a locked-down worker (this runs off the event loop)
            from bollard.sandbox.js.check import deno_load_errors

            deno_errors = deno_load_errors(source, filename)
            if deno_errors:
                raise ConnectorCompileError(deno_errors)
    except ConnectorCompileError as e:
        if filename == CONNECTOR_FILE:
            return [f"{CONNECTOR_FILE}: {msg}" for msg in e.errors]
        return [msg if msg.startswith(filename) else f"{filename}: {msg}" for msg in e.errors]
    except RecursionError:  # e.g. a 3,000-link a.b.b… chain (hardening issue item 9)
        return [
            f"{filename}: an expression is nested too deeply to compile (RecursionError); "
            "split it into shorter statements"
        ]
    return []


def _connector_errors(source: bytes, manifest: Manifest | None, name: str = CONNECTOR_FILE) -> list[str]:
    """The connector (``name``): at most 512 KB of UTF-8 that passes the sandbox's
    load-time policy; a SQL integration (``manifest.type == "sql"``) may ship none."""
    if len(source) > CONNECTOR_MAX_BYTES:
        return [f"{name} is {len(source)} bytes; the limit is {CONNECTOR_MAX_BYTES} bytes"]
    try:
        text = source.decode("utf-8")
    except UnicodeDecodeError:
        return [f"{name} is not UTF-8 text"]
    if manifest is not None and manifest.type == "sql":
        return [f"{name}: SQL integrations run no code; remove {name}"]
    return compile_errors(text, name)


def _icon_errors(files: dict[str, bytes]) -> list[str]:
    """At most one icon file, each a valid image of its kind (see :func:`icon_error`)."""
    errors: list[str] = []
    icons = [n for n in ICON_NAMES if n in files]
    if len(icons) > 1:
        errors.append(f"more than one icon ({', '.join(icons)}); keep one")
    for name in icons:
        problem = icon_error(name, files[name])
        if problem:
            errors.append(problem)
    return errors


def build_version(slug: str, path: Path, files: dict[str, bytes]) -> IntegrationVersion:
    """Validate a whole package and return its version.

    ``files`` maps file names (no directories) to bytes. Raises :class:`PackageError`
    listing every problem: the slug, the manifest (with field paths), the connector's
    compile errors with line numbers, the icon, sizes.
    """
    errors: list[str] = []
    problem = slug_error(slug)
    if problem:
        errors.append(problem)
    raw = files.get(CONFIG_FILE)
    if raw is None:
        raise PackageError([*errors, f"{CONFIG_FILE} is missing"])
    connectors = [name for name in CONNECTOR_FILES if name in files]
    has_connector = bool(connectors)
    if len(connectors) > 1:
        errors.append(f"more than one connector ({', '.join(connectors)}); keep one")
    manifest: Manifest | None = None
    warnings: tuple[ManifestIssue, ...] = ()
    try:
        parsed = parse_manifest_bytes(raw, has_connector=has_connector)
        manifest, warnings = parsed.manifest, tuple(parsed.warnings)
    except ManifestError as e:
        errors.extend(f"{CONFIG_FILE}: {issue}" for issue in e.issues)

    if len(connectors) == 1:
        errors.extend(_connector_errors(files[connectors[0]], manifest, connectors[0]))
    errors.extend(_icon_errors(files))

    if manifest is not None:
        seed = seed_file_name(manifest)
        if seed is not None and seed not in files:
            errors.append(
                f"{CONFIG_FILE}: sqlConnectionConfig.options.seedFile names '{seed}', "
                "which is not in the folder"
            )
    if errors:
        raise PackageError(errors)
    assert manifest is not None
    return IntegrationVersion(
        slug=slug,
        path=path,
        manifest=manifest,
        content_hash=content_hash(files),
        files=dict(files),
        warnings=warnings,
        lints=lint_package(manifest, files),
    )


def allowed_file_names(config_raw: bytes | None) -> set[str]:
    """File names a package may hold: config, connector, icons, README, the seed script."""
    names = {CONFIG_FILE, *CONNECTOR_FILES, *ICON_NAMES, *README_NAMES}
    if config_raw is not None:
        m = re.search(rb'"seedFile"\s*:\s*"([A-Za-z0-9_.-]+\.sql)"', config_raw)
        if m:
            names.add(m.group(1).decode())
    return names


def size_limit(name: str) -> int:
    """The most bytes file ``name`` may hold (DESIGN §10), for folders and uploads alike."""
    if name == CONFIG_FILE:
        return MANIFEST_MAX_BYTES
    if name in CONNECTOR_FILES:
        return CONNECTOR_MAX_BYTES
    if name in ICON_NAMES:
        return ICON_MAX_BYTES
    return SEED_MAX_BYTES


def read_folder(path: Path) -> dict[str, bytes]:
    """Read an integration folder's files, refusing what a package may not hold.

    Symlinks (the folder or any file), unreadable and oversized files are errors;
    hidden files (``.*``) and unknown names are ignored so editors' swap files and
    caches never break a load. Raises :class:`PackageError`.
    """
    errors: list[str] = []
    try:
        st = path.lstat()
    except OSError as e:
        raise PackageError([f"cannot read folder: {e.strerror}"]) from None
    if stat.S_ISLNK(st.st_mode):
        raise PackageError(["the folder is a symbolic link; integrations must be real folders"])
    config_path = path / CONFIG_FILE
    try:
        config_raw: bytes | None = (
            config_path.read_bytes() if config_path.is_file() and not config_path.is_symlink() else None
        )
    except OSError:
        config_raw = None
    allowed = allowed_file_names(config_raw)
    files: dict[str, bytes] = {}
    try:
        children = sorted(path.iterdir())
    except OSError as e:
        raise PackageError([f"cannot list folder: {e.strerror}"]) from None
    for child in children:
        name = child.name
        if name.startswith(".") or name not in allowed:
            continue
        try:
            cst = child.lstat()
        except OSError as e:
            errors.append(f"{name}: cannot read ({e.strerror})")
            continue
        if stat.S_ISLNK(cst.st_mode):
            errors.append(f"{name} is a symbolic link; copy the file into the folder instead")
            continue
        if not stat.S_ISREG(cst.st_mode):
            errors.append(f"{name} is not a regular file")
            continue
        limit = size_limit(name)
        if cst.st_size > limit:
            errors.append(f"{name} is {cst.st_size} bytes; the limit is {limit} bytes")
            continue
        try:
            files[name] = child.read_bytes()
        except OSError as e:
            errors.append(f"{name}: cannot read ({e.strerror})")
    if errors:
        raise PackageError(errors)
    return files


def load_folder(path: Path) -> IntegrationVersion:
    """Read and validate ``path`` as the integration named by its folder name (``.`` is
    the working directory's name)."""
    return build_version(Path(os.path.abspath(path)).name, path, read_folder(path))
