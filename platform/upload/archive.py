"""Reading an upload into a package's files: a zip, or a set of files (DESIGN §10).

Every entry's name, type, flags and sizes are checked before any data is inflated; each
member is then read through a bounded reader (never trusting the header's sizes) and its
real size compared with the declared one. Refused: names outside a flat package (``..``,
absolute paths, drive letters, backslashes, subfolders, odd characters, two top
folders), links, devices and other special files, duplicate names, encrypted entries,
compression other than stored/deflate, comments, unknown extra fields, local headers that
disagree with the central directory, overlapping entries, bytes before the first entry,
nested archives, a total over 1 MB, ``config.json`` or the connector over 512 KB, an icon
over 256 KB, a ratio over :data:`MAX_RATIO`, and any name a package does not hold
(:func:`~bollard.platform.packages.allowed_file_names`, the folder loader's list).

Every refusal is a :class:`PackageError` (``invalid_package``, 400) whose reasons each
name the entry (``zip entry '../x'``) and the rule. Validation proper (manifest,
connector compile, lints, icon content) is the folder loader's
:func:`~bollard.platform.packages.build_version`, run by :mod:`.install`.
"""

from __future__ import annotations

import io
import re
import stat
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass

from bollard.platform.errors import PackageError
from bollard.platform.packages import (
    CONFIG_FILE,
    allowed_file_names,
    size_limit,
)

MAX_TOTAL_BYTES = 1024 * 1024  # every file of a package together, uncompressed (DESIGN §10)
MAX_ARCHIVE_BYTES = 1024 * 1024  # the zip itself
MAX_ENTRIES = 32  # a package holds at most a handful of files
MAX_RATIO = 100  # uncompressed : compressed, per entry, checked from RATIO_FLOOR_BYTES up
RATIO_FLOOR_BYTES = 4096
MAX_NAME_CHARS = 200
# Extra fields that only carry timestamps, owners or Zip64 sizes; any other (the Info-ZIP
# Unicode path 0x7075, for one) could make another tool see a different name or file.
ALLOWED_EXTRA_FIELDS = frozenset({0x0001, 0x000A, 0x5455, 0x5855, 0x7855, 0x7875})
ARCHIVE_SUFFIXES = (".zip", ".jar", ".tar", ".tgz", ".gz", ".bz2", ".xz", ".7z", ".rar")
ARCHIVE_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08", b"\x1f\x8b", b"7z\xbc\xaf", b"Rar!")
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
_ENCRYPTED_FLAGS = 0x0001 | 0x0040 | 0x2000  # traditional, strong, central-directory encryption
_LOCAL_HEADER = struct.Struct("<4s5H3L2H")


def shown(name: str) -> str:
    """An entry name safe to put in a message: unprintable characters escaped, at most 120."""
    text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in name)
    return text if len(text) <= 120 else text[:117] + "..."


def name_error(name: str) -> str | None:
    """Why an entry name cannot be part of a package, or ``None``. A package is flat:
    files at the root, or in one top folder (a trailing ``/`` marks a folder entry)."""
    if "\x00" in name:
        return "contains a NUL byte"
    if name.startswith(("/", "\\")):
        return "is an absolute path; paths must be relative to the package"
    if re.match(r"[A-Za-z]:", name):
        return "starts with a drive letter; paths must be relative to the package"
    if "\\" in name:
        return "contains a backslash (a Windows separator); zip paths use '/'"
    parts = name.removesuffix("/").split("/")
    if ".." in parts:
        return "climbs out of the package with '..'"
    if len(name) > MAX_NAME_CHARS:
        return f"is longer than {MAX_NAME_CHARS} characters"
    if any(p in ("", ".") for p in parts):
        return "has an empty or '.' path segment"
    if len(parts) > 2 or (len(parts) == 2 and name.endswith("/")):
        return "is in a subfolder; put the files at the root of the zip or in one top folder"
    if not all(_SEGMENT.fullmatch(p) for p in parts):
        return "contains characters other than letters, digits, '.', '_' and '-'"
    return None


@dataclass(frozen=True)
class Item:
    """One file of an upload: its name as sent, the size it declares and a bounded reader
    (``read(limit)`` answers at most ``limit + 1`` bytes, so an overflow shows)."""

    name: str
    declared: int | None
    read: Callable[[int], bytes]


def _label(kind: str, name: str) -> str:
    return f"{kind} '{shown(name)}'"


def _locate(items: list[Item], kind: str) -> tuple[dict[str, Item], str | None]:
    """Check names, find the top folder and map base names to items; raise every problem."""
    errors: list[str] = []
    folders: set[str] = set()
    placed: list[tuple[list[str], Item]] = []
    for item in items:
        problem = name_error(item.name)
        if problem:
            errors.append(f"{_label(kind, item.name)}: {problem}")
        elif item.name.endswith("/"):
            folders.add(item.name[:-1])
        else:
            placed.append((item.name.split("/"), item))
    if errors:
        raise PackageError(errors)
    at_root = [parts[0] for parts, _ in placed if len(parts) == 1]
    folders |= {parts[0] for parts, _ in placed if len(parts) == 2}
    if len(folders) > 1:
        names = ", ".join(f"'{shown(f)}'" for f in sorted(folders)[:5])
        raise PackageError(
            [f"the files are in {len(folders)} top folders ({names}); use one top folder, or none"]
        )
    if folders and at_root:
        raise PackageError(
            [
                f"{_label(kind, at_root[0])} is at the root next to the top folder "
                f"'{shown(next(iter(folders)))}'; put every file in the folder, or none"
            ]
        )
    by_name: dict[str, Item] = {}
    for parts, item in placed:
        if parts[-1] in by_name:
            errors.append(f"{_label(kind, item.name)}: a duplicate name; each file may appear once")
        by_name[parts[-1]] = item
    if errors:
        raise PackageError(errors)
    return by_name, (next(iter(folders)) if folders else None)


def _read_items(by_name: dict[str, Item], kind: str) -> dict[str, bytes]:
    """Read config.json first (it may name a seed file), refuse unknown names, then read
    every file with its size cap and the total cap, checking the real sizes."""
    errors: list[str] = []
    for name, item in by_name.items():
        if name.lower().endswith(ARCHIVE_SUFFIXES):
            errors.append(
                f"{_label(kind, item.name)}: a nested archive; upload the package's files themselves"
            )
    if errors:
        raise PackageError(errors)
    config = by_name.get(CONFIG_FILE)
    config_raw = _read_one(config, CONFIG_FILE, kind) if config is not None else None
    allowed = allowed_file_names(config_raw)
    unknown = [item.name for name, item in by_name.items() if name not in allowed]
    if unknown:
        names = ", ".join(sorted(n for n in allowed if not n.endswith(".sql")))
        raise PackageError(
            [f"{_label(kind, n)}: not a file an integration holds (allowed: {names})" for n in unknown]
        )
    declared_total = sum(item.declared or 0 for item in by_name.values())
    if declared_total > MAX_TOTAL_BYTES:
        raise PackageError(
            [
                f"the package's files declare {declared_total} bytes in all; the limit is "
                f"{MAX_TOTAL_BYTES} bytes for a whole package"
            ]
        )
    files: dict[str, bytes] = {}
    total = 0
    for name, item in sorted(by_name.items()):
        data = config_raw if name == CONFIG_FILE and config_raw is not None else _read_one(item, name, kind)
        total += len(data)
        if total > MAX_TOTAL_BYTES:
            raise PackageError(
                [f"{_label(kind, item.name)}: the files pass {MAX_TOTAL_BYTES} bytes in all (the limit)"]
            )
        if data.startswith(ARCHIVE_MAGIC):
            errors.append(f"{_label(kind, item.name)}: holds a nested archive; a package holds plain files")
        files[name] = data
    if errors:
        raise PackageError(errors)
    return files


def _read_one(item: Item, name: str, kind: str) -> bytes:
    limit = size_limit(name)
    label = _label(kind, item.name)
    if item.declared is not None and item.declared > limit:
        raise PackageError(
            [f"{label}: declares {item.declared} bytes; {name} may hold at most {limit} bytes"]
        )
    data = item.read(limit)
    if len(data) > limit:
        raise PackageError([f"{label}: more than {limit} bytes; {name} may hold at most {limit} bytes"])
    if item.declared is not None and len(data) != item.declared:
        raise PackageError(
            [f"{label}: declares {item.declared} bytes but holds {len(data)}; the header lies about the size"]
        )
    return data


def _extra_ids(extra: bytes) -> list[int] | None:
    """The header ids of a zip extra field, or ``None`` when it is malformed."""
    ids: list[int] = []
    i = 0
    while i + 4 <= len(extra):
        hid, length = struct.unpack_from("<HH", extra, i)
        i += 4 + length
        ids.append(hid)
    return ids if i == len(extra) else None


def _entry_errors(info: zipfile.ZipInfo, data: bytes, end: int) -> list[str]:
    """Everything wrong with one central-directory entry, from its header alone."""
    label = _label("zip entry", info.orig_filename)
    errors: list[str] = []
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)
    if kind == stat.S_IFLNK:
        errors.append(f"{label}: a symbolic link; a package holds regular files only")
    elif kind in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK):
        errors.append(f"{label}: a device or special file; a package holds regular files only")
    elif kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        errors.append(f"{label}: an unknown file type ({oct(kind)}); a package holds regular files only")
    elif (kind == stat.S_IFDIR or info.external_attr & 0x10) and not info.filename.endswith("/"):
        errors.append(f"{label}: marked as a folder but named like a file")
    if info.flag_bits & _ENCRYPTED_FLAGS:
        errors.append(f"{label}: encrypted; upload an unencrypted zip")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        errors.append(f"{label}: compression method {info.compress_type}; use deflate or none")
    if info.comment:
        errors.append(f"{label}: carries a comment; zip it without comments")
    errors.extend(_local_header_errors(info, data, end, label))
    if info.compress_size > info.file_size + info.file_size // 100 + 64 and info.compress_type != 0:
        errors.append(
            f"{label}: {info.compress_size} compressed bytes for a declared {info.file_size}; "
            "the header lies about the size"
        )
    elif info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size:
        errors.append(f"{label}: a stored entry whose sizes differ; the header lies about the size")
    if info.file_size >= RATIO_FLOOR_BYTES and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        ratio = info.file_size // max(info.compress_size, 1)
        errors.append(
            f"{label}: compresses {ratio}:1, over the {MAX_RATIO}:1 ratio allowed (a zip bomb); "
            "upload real content"
        )
    return errors


def _local_header_errors(info: zipfile.ZipInfo, data: bytes, end: int, label: str) -> list[str]:
    """The local header must agree with the central directory (name, method, no
    encryption), carry only known extra fields (both copies), and its data must end by
    ``end`` (the next entry or the central directory): no overlapping entries."""
    off = info.header_offset
    if off < 0 or off + _LOCAL_HEADER.size > len(data):
        return [f"{label}: its local header is outside the archive; the archive is forged"]
    sig, _, flags, method, *_, name_len, extra_len = _LOCAL_HEADER.unpack_from(data, off)
    start = off + _LOCAL_HEADER.size
    errors: list[str] = []
    expected = info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437")
    if sig != b"PK\x03\x04" or data[start : start + name_len] != expected or method != info.compress_type:
        errors.append(
            f"{label}: its local header disagrees with the central directory; the archive is forged"
        )
    if flags & _ENCRYPTED_FLAGS and not info.flag_bits & _ENCRYPTED_FLAGS:
        errors.append(f"{label}: encrypted; upload an unencrypted zip")
    if start + name_len + extra_len + info.compress_size > end:
        errors.append(f"{label}: its data overlaps the next entry (a zip bomb trick)")
    local_extra = data[start + name_len : start + name_len + extra_len]
    for where, extra in (("central", info.extra), ("local", local_extra)):
        ids = _extra_ids(extra)
        if ids is None:
            errors.append(f"{label}: a malformed {where} extra field; the archive is forged")
            continue
        odd = sorted({i for i in ids if i not in ALLOWED_EXTRA_FIELDS})
        if odd:
            errors.append(
                f"{label}: {where} extra field 0x{odd[0]:04x} is not accepted (it can name another file "
                "to other tools); zip it without extra fields"
            )
    return errors


def read_zip(data: bytes) -> tuple[dict[str, bytes], str | None]:
    """The files of a zip archive and its top folder's name (``None`` when the files are
    at its root). Raises :class:`PackageError` naming each refused entry and its rule."""
    if len(data) > MAX_ARCHIVE_BYTES:
        raise PackageError([f"the zip is {len(data)} bytes; the limit is {MAX_ARCHIVE_BYTES} bytes"])
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, struct.error) as e:
        raise PackageError([f"the upload is not a readable zip archive ({str(e)[:100]})"]) from None
    with zf:
        infos = zf.infolist()
        if not infos:
            raise PackageError(["the zip is empty; it must hold config.json"])
        if len(infos) > MAX_ENTRIES:
            raise PackageError([f"the zip has {len(infos)} entries; a package holds at most {MAX_ENTRIES}"])
        errors: list[str] = []
        if zf.comment:
            errors.append("the zip carries an archive comment; zip it without comments")
        order = sorted(infos, key=lambda i: i.header_offset)
        if order[0].header_offset != 0:
            errors.append(
                f"the zip has {order[0].header_offset} bytes before its first entry; upload a plain zip"
            )
        central = int(getattr(zf, "start_dir", len(data)))
        for i, info in enumerate(order):
            end = order[i + 1].header_offset if i + 1 < len(order) else central
            errors.extend(_entry_errors(info, data, end))
        if errors:
            raise PackageError(errors)

        def reader(info: zipfile.ZipInfo) -> Callable[[int], bytes]:
            def read(limit: int) -> bytes:
                return _read_member(zf, info, limit)

            return read

        items = [
            Item(info.orig_filename, None if info.is_dir() else info.file_size, reader(info))
            for info in infos
        ]
        by_name, top = _locate(items, "zip entry")
        return _read_items(by_name, "zip entry"), top


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """At most ``limit + 1`` bytes of ``info``, inflated in bounded steps; a CRC or
    stream error is a refusal naming the entry."""
    chunks: list[bytes] = []
    got = 0
    try:
        with zf.open(info) as member:
            while got <= limit:
                chunk = member.read(min(64 * 1024, limit + 1 - got))
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, RuntimeError, NotImplementedError) as e:
        raise PackageError(
            [
                f"{_label('zip entry', info.orig_filename)}: its data does not match its header "
                f"({str(e)[:80]}); the archive is corrupt or forged"
            ]
        ) from None
    return b"".join(chunks)


def read_file_set(files: list[tuple[str, bytes]]) -> tuple[dict[str, bytes], str | None]:
    """The files of a multipart file set (``[(filename, bytes)]``) and their common top
    folder, if the names carry one (a browser's folder upload). The same rules as a zip."""
    if len(files) > MAX_ENTRIES:
        raise PackageError([f"{len(files)} files were sent; a package holds at most {MAX_ENTRIES}"])
    items = [Item(name or "(no name)", len(data), _bytes_reader(data)) for name, data in files]
    if any(not name for name, _ in files):
        raise PackageError(["file '(no name)': a 'files' part without a file name; name each part"])
    by_name, top = _locate(items, "file")
    return _read_items(by_name, "file"), top


def _bytes_reader(data: bytes) -> Callable[[int], bytes]:
    return lambda limit: data[: limit + 1]
