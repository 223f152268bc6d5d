"""Builders for zip archives, good and forged (the upload tests), and a directory listing."""

from __future__ import annotations

import io
import os
import struct
import warnings
import zipfile
from collections.abc import Iterable
from pathlib import Path

# Offsets of fields in a local file header and a central directory header (APPNOTE 4.3.7, 4.3.12).
LOCAL = {"flags": (6, "H"), "method": (8, "H"), "crc": (14, "I"), "csize": (18, "I"), "usize": (22, "I")}
CENTRAL = {
    "flags": (8, "H"),
    "method": (10, "H"),
    "crc": (16, "I"),
    "csize": (20, "I"),
    "usize": (24, "I"),
    "attr": (38, "I"),
}


def make_zip(
    entries: Iterable[tuple[str | zipfile.ZipInfo, bytes]],
    *,
    comment: bytes = b"",
    compression: int = zipfile.ZIP_DEFLATED,
) -> bytes:
    """A zip of ``entries`` (a name or a prepared :class:`zipfile.ZipInfo`, and its bytes).
    Duplicate names are written as given (zipfile's warning about them is silenced)."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(buf, "w", compression=compression) as zf:
            for name, data in entries:
                zf.writestr(name, data)
            zf.comment = comment
    return buf.getvalue()


def folder_zip(folder: Path, *, top: str | None = None) -> bytes:
    """A zip of a folder's files, at its root or under ``top/``."""
    prefix = f"{top}/" if top else ""
    return make_zip((prefix + p.name, p.read_bytes()) for p in sorted(folder.iterdir()) if p.is_file())


def _central_offset(data: bytes, name: str) -> int:
    raw = name.encode()
    i = data.find(b"PK\x01\x02")
    while i != -1:
        (length,) = struct.unpack_from("<H", data, i + 28)
        if data[i + 46 : i + 46 + length] == raw:
            return i
        i = data.find(b"PK\x01\x02", i + 1)
    raise KeyError(name)


def patch_entry(data: bytes, name: str, *, local: bool = True, central: bool = True, **fields: int) -> bytes:
    """Overwrite header fields (``flags``, ``method``, ``crc``, ``csize``, ``usize``, and
    ``attr`` in the central directory) of entry ``name`` by hand: forged archives."""
    buf = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        local_at = zf.getinfo(name).header_offset
    central_at = _central_offset(data, name)
    for field, value in fields.items():
        if local and field in LOCAL:
            off, fmt = LOCAL[field]
            struct.pack_into("<" + fmt, buf, local_at + off, value)
        if central and field in CENTRAL:
            off, fmt = CENTRAL[field]
            struct.pack_into("<" + fmt, buf, central_at + off, value)
    return bytes(buf)


def rename_local(data: bytes, name: str, new: str) -> bytes:
    """Give entry ``name``'s local header another name of the same length."""
    assert len(new) == len(name)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        at = zf.getinfo(name).header_offset
    return data[: at + 30] + new.encode() + data[at + 30 + len(name) :]


def listing(root: Path) -> list[tuple[str, str, int]]:
    """Every path under ``root`` (hidden ones included), its kind and size: what a
    refused upload must leave as it was."""
    out: list[tuple[str, str, int]] = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = path.lstat()
            kind = "link" if path.is_symlink() else "dir" if path.is_dir() else "file"
            out.append((str(path.relative_to(root)), kind, st.st_size if kind == "file" else 0))
    return sorted(out)
