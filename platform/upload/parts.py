"""Reading an upload's multipart parts under the caps of :mod:`.archive` before any of it
is unpacked: the API's ``POST /api/integrations`` and the web page's Add integration both
read through here (DESIGN §10)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bollard.platform.errors import PackageError
from bollard.platform.upload.archive import MAX_ARCHIVE_BYTES, MAX_ENTRIES, MAX_TOTAL_BYTES


class Part(Protocol):
    """An uploaded file part (Starlette's ``UploadFile``)."""

    filename: str | None

    async def read(self, size: int = -1) -> bytes: ...


async def read_zip_part(part: Part) -> bytes:
    """The zip's bytes; raises :class:`PackageError` past ``MAX_ARCHIVE_BYTES`` (reads at
    most one byte more)."""
    data = await part.read(MAX_ARCHIVE_BYTES + 1)
    if len(data) > MAX_ARCHIVE_BYTES:
        raise PackageError([f"file: the zip is over {MAX_ARCHIVE_BYTES} bytes (the limit)"])
    return data


async def read_file_parts(parts: Sequence[Part]) -> list[tuple[str, bytes]]:
    """``[(filename, bytes)]`` of the parts, ``""`` for a part without a name.

    Raises :class:`PackageError` for more than ``MAX_ENTRIES`` parts (before reading any)
    or past ``MAX_TOTAL_BYTES`` in all (reads at most one byte more)."""
    if len(parts) > MAX_ENTRIES:
        raise PackageError([f"files: {len(parts)} files were sent; a package holds at most {MAX_ENTRIES}"])
    file_set: list[tuple[str, bytes]] = []
    total = 0
    for part in parts:
        data = await part.read(MAX_TOTAL_BYTES + 1 - total)
        total += len(data)
        if total > MAX_TOTAL_BYTES:
            raise PackageError([f"files: the files pass {MAX_TOTAL_BYTES} bytes in all (the limit)"])
        file_set.append((part.filename or "", data))
    return file_set
