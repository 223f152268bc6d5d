"""Names and media types from connector code, made safe for disk and headers (DESIGN §3).

A connector chooses the ``fileName`` and ``contentType`` of the files it stores and of
the multipart parts it sends; both end up in HTTP headers (``Content-Disposition``,
``Content-Type``), so both are untrusted: a CR/LF would inject a header, a ``/`` or
``..`` would name another path. Files are stored under their id only, never under
their name; the name is kept for ``Content-Disposition`` and cleaned here.
"""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

DEFAULT_FILE_NAME = "file"
DEFAULT_CONTENT_TYPE = "application/octet-stream"
MAX_NAME_CHARS = 255

# RFC 9110 §8.3.1: type "/" subtype, both tokens; one optional charset parameter kept.
_TOKEN = r"[A-Za-z0-9!#$%&'*+.^_`|~-]+"
_MEDIA_TYPE = re.compile(rf"({_TOKEN})/({_TOKEN})")
_CHARSET = re.compile(r"charset=\"?([A-Za-z0-9._:+-]{1,40})\"?", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def clean_content_type(value: str | None, where: str = "contentType") -> str:
    """A media type safe for a ``Content-Type`` header: ``type/subtype`` lower-cased, with
    its ``charset`` parameter if it had one; ``None`` or empty gives
    :data:`DEFAULT_CONTENT_TYPE`. Raises ``ValueError`` naming ``where`` for anything
    that is not a media type (control characters, no ``/``, spaces): a header injection
    attempt is refused, not repaired."""
    if value is None or not value.strip():
        return DEFAULT_CONTENT_TYPE
    main, _, rest = value.partition(";")
    match = _MEDIA_TYPE.fullmatch(main.strip())
    if match is None or _CONTROL.search(value) or len(value) > 255:
        raise ValueError(f"{where} is not a media type such as 'image/png' (got {value[:60]!r})")
    media = f"{match.group(1)}/{match.group(2)}".lower()
    charset = _CHARSET.search(rest)
    return f"{media}; charset={charset.group(1).lower()}" if charset else media


def clean_file_name(value: str | None) -> str:
    """The last path segment of ``value`` (``/`` and ``\\`` both separate), NFC, without
    control, bidi-override or line-separator characters and leading dots or spaces, at
    most :data:`MAX_NAME_CHARS` characters; :data:`DEFAULT_FILE_NAME` when nothing is
    left. Never raises: a name is only a label (the file's path is its id)."""
    if not value:
        return DEFAULT_FILE_NAME
    name = unicodedata.normalize("NFC", value)
    name = re.split(r"[/\\]", name)[-1]
    name = _CONTROL.sub("", name).strip().lstrip(".").strip()
    if len(name) > MAX_NAME_CHARS:
        stem, dot, ext = name.rpartition(".")
        name = (stem[: MAX_NAME_CHARS - len(ext) - 1] + dot + ext) if dot and len(ext) <= 16 else name
        name = name[:MAX_NAME_CHARS]
    return name or DEFAULT_FILE_NAME


def content_disposition(file_name: str) -> str:
    """``attachment`` with an ASCII ``filename`` fallback and the exact name as
    ``filename*`` (RFC 6266 §4.3, RFC 8187): no quote, backslash or control character
    reaches the header whatever the name holds."""
    ascii_name = unicodedata.normalize("NFKD", file_name).encode("ascii", "ignore").decode("ascii")
    ascii_name = re.sub(r"[^A-Za-z0-9._ ()+-]", "_", ascii_name).strip() or DEFAULT_FILE_NAME
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(file_name, safe='')}"
