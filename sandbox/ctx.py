"""The ``ctx`` object connector code receives (DESIGN §3). Runs in the worker.

``ctx`` is the connector's only capability, so its surface is the real security
boundary (research/restrictedpython.md: RestrictedPython only stops underscore
names; everything public on a host object is usable). Hence:

- every class has ``__slots__``; its public names are exactly those listed in
  :data:`PUBLIC_ATTRIBUTES`, which the ``_getattr_`` guard enforces on top;
- private state sits in underscore slots that restricted code cannot name;
- every argument is type-checked with ``type(x) is ...`` (a ``str``/``dict`` subclass
  made by the connector could lie through its methods) and copied to plain values
  before it is sent;
- responses are plain data (:class:`Response` holds ``int``/``str``/``dict``), never
  client objects; errors carry short, constant or host-written messages.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from .ctx_http import Http, Response, Transport, check_headers, optional_text
from .errors import HttpRequestRefused
from .protocol import (
    FILE_ENCODINGS,
    MAX_CONTENT_TYPE_CHARS,
    MAX_FILE_NAME_CHARS,
    MAX_LOG_LINES,
    MAX_REQUEST_BODY_BYTES,
    MAX_URL_CHARS,
)

MAX_KEPT_LINES = MAX_LOG_LINES - 1  # lines of connector output kept, before the marker line


class ConnectorOutput:
    """The connector's output: lines written by ``print`` and ``ctx.log`` during one
    execution, which become the ``logs`` of its result or error (not to be confused with
    the platform's execution log of calls). Capped at ``max_bytes`` (UTF-8) in total and
    at :data:`MAX_KEPT_LINES` lines (the protocol's :data:`MAX_LOG_LINES` less the
    marker); past a cap one marker line is added and further output dropped, so the
    result is kept (hardening issue item 10)."""

    __slots__ = ("lines", "_size", "max_bytes", "_partial", "_full")

    def __init__(self, max_bytes: int) -> None:
        self.lines: list[str] = []
        self._size = 0
        self.max_bytes = max_bytes
        self._partial = ""
        self._full = False

    def add(self, line: str) -> None:
        """Append one line (already a ``str``), after any unterminated printed text."""
        if self._partial:
            partial, self._partial = self._partial, ""
            self._append(partial)
        self._append(line)

    def _append(self, line: str) -> None:
        if self._full:
            return
        size = len(line.encode("utf-8", "replace")) + 1
        if self._size + size > self.max_bytes:
            self._full = True
            self.lines.append(f"[log truncated at {self.max_bytes} bytes]")
            return
        if len(self.lines) >= MAX_KEPT_LINES:  # the host refuses more lines than the protocol allows
            self._full = True
            self.lines.append(f"[log truncated at {MAX_KEPT_LINES} lines]")
            return
        self._size += size
        self.lines.append(line)

    def write(self, text: str) -> None:
        """Append printed text, splitting it into lines."""
        if self._full:
            return
        text = self._partial + text
        *complete, self._partial = text.split("\n")
        if len(self._partial) > self.max_bytes:
            complete.append(self._partial)
            self._partial = ""
        for line in complete:
            self._append(line)

    def finish(self) -> list[str]:
        """Flush a trailing unterminated line and return the lines."""
        if self._partial:
            self._append(self._partial)
            self._partial = ""
        return self.lines


class Printer:
    """The object behind ``print`` in connector code (RestrictedPython rewrites
    ``print(...)`` to ``_print._call_print(...)`` and ``printed`` to ``_print()``).
    Output goes to the :class:`ConnectorOutput`; ``file=`` is refused."""

    __slots__ = ("_log", "_text", "_size")

    def __init__(self, log: ConnectorOutput) -> None:
        self._log = log
        self._text: list[str] = []
        self._size = 0

    def __call__(self) -> str:
        return "".join(self._text)

    def _call_print(
        self, *objects: Any, sep: Any = " ", end: Any = "\n", file: Any = None, flush: Any = False
    ) -> None:
        if file is not None:
            raise TypeError("print(file=...) is not available in connectors")
        sep = " " if sep is None else sep
        end = "\n" if end is None else end
        if type(sep) is not str or type(end) is not str:
            raise TypeError("print() sep and end must be str")
        text = sep.join(str(o) for o in objects) + end
        if self._size < self._log.max_bytes:  # ``printed`` is capped like the log
            self._text.append(text)
            self._size += len(text)
        self._log.write(text)


class Secrets:
    """``ctx.secrets``: the secret values the host sent for this call only."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, str]) -> None:
        self._values = values

    def get(self, key: Any, default: Any = None) -> Any:
        """The secret ``key`` (``str``), or ``default`` (``None``) when it was not sent.
        Raises ``TypeError`` when ``key`` is not exactly a ``str``."""
        if type(key) is not str:
            raise TypeError("ctx.secrets.get() takes a str key")
        return self._values.get(key, default)

    def __repr__(self) -> str:
        return "<ctx.secrets>"


def _file_bytes(data: Any, encoding: Any) -> bytes:
    if type(data) is bytes:
        raw = data
    elif type(data) is not str:
        raise TypeError("ctx.files.store() data must be a str (or bytes)")
    elif encoding == "base64":
        try:
            raw = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("ctx.files.store(): data is not valid base64 (encoding='base64')") from None
    else:
        raw = data.encode("utf-8", "replace")
    if len(raw) > MAX_REQUEST_BODY_BYTES:
        raise ValueError(f"a stored file is limited to {MAX_REQUEST_BODY_BYTES} bytes here")
    return raw


class Files:
    """``ctx.files`` (Tale's FilesApi): ``store(data, *, encoding="utf-8",
    content_type=None, file_name=None)`` and ``download(url, *, headers=None,
    file_name=None)``, each one blocking round trip to the host's file store, which
    returns Tale's FileReference as a dict ``{fileId, url, fileName, contentType, size}``.
    ``data`` is a str (UTF-8 text, or base64 text with ``encoding="base64"``) or bytes.
    The host caps each file and the files of an execution; ``download`` goes through
    the egress policy like ``ctx.http``. A refusal raises
    :class:`~bollard.sandbox.errors.HttpRequestRefused` (``e.code``); wrong types
    ``TypeError``, bad values ``ValueError``."""

    __slots__ = ("_send",)

    def __init__(self, send: Transport) -> None:
        self._send = send

    def store(
        self, data: Any, *, encoding: Any = "utf-8", content_type: Any = None, file_name: Any = None
    ) -> Any:
        """Store ``data`` as a file; see the class docstring."""
        if encoding is not None and (type(encoding) is not str or encoding not in FILE_ENCODINGS):
            raise ValueError("encoding must be 'utf-8' or 'base64'")
        raw = _file_bytes(data, encoding)
        message = {
            "type": "file_store",
            "file_name": optional_text(file_name, "file_name", MAX_FILE_NAME_CHARS),
            "content_type": optional_text(content_type, "content_type", MAX_CONTENT_TYPE_CHARS),
        }
        reply, _ = self._send(message, raw)
        return reply["file"]

    def download(self, url: Any, *, headers: Any = None, file_name: Any = None) -> Any:
        """Download ``url`` (GET, egress policy and limits) into a file; see the class docstring."""
        if type(url) is not str:
            raise TypeError("url must be a str")
        if len(url) > MAX_URL_CHARS:
            raise ValueError(f"urls are limited to {MAX_URL_CHARS} characters")
        message = {
            "type": "file_download",
            "url": url,
            "headers": check_headers(headers),
            "file_name": optional_text(file_name, "file_name", MAX_FILE_NAME_CHARS),
        }
        reply, _ = self._send(message, b"")
        return reply["file"]

    def __repr__(self) -> str:
        return "<ctx.files>"


class Context:
    """The ``ctx`` argument of ``execute(ctx)`` / ``test_connection(ctx)``:
    ``operation`` (str), ``params`` (plain JSON dict, the connector's own copy),
    ``secrets`` (:class:`Secrets`), ``http`` (:class:`Http`), ``files``
    (:class:`Files`, or ``None`` when the host has no file store), ``log(msg)``,
    ``base64_encode(str) -> str``, ``base64_decode(str) -> str``."""

    __slots__ = ("operation", "params", "secrets", "http", "files", "_log")

    def __init__(
        self,
        operation: str,
        params: dict[str, Any],
        secrets: Secrets,
        http: Http,
        log: ConnectorOutput,
        files: Files | None = None,
    ) -> None:
        self.operation = operation
        self.params = params
        self.secrets = secrets
        self.http = http
        self.files = files
        self._log = log

    def log(self, message: Any) -> None:
        """Add ``message`` (converted with ``str``) to the connector output (the ``logs``
        of the result)."""
        self._log.add(message if type(message) is str else str(message))

    def base64_encode(self, text: Any) -> str:
        """Base64 of the UTF-8 bytes of ``text`` (str); ``TypeError`` otherwise."""
        if type(text) is not str:
            raise TypeError("ctx.base64_encode() takes a str")
        return base64.b64encode(text.encode("utf-8")).decode("ascii")

    def base64_decode(self, data: Any) -> str:
        """The text (UTF-8, invalid bytes replaced) encoded in base64 ``data`` (str);
        ``TypeError`` for other types, ``ValueError`` for invalid base64."""
        if type(data) is not str:
            raise TypeError("ctx.base64_decode() takes a str")
        try:
            return base64.b64decode(data).decode("utf-8", "replace")
        except (binascii.Error, ValueError):
            raise ValueError("ctx.base64_decode(): invalid base64") from None

    def __repr__(self) -> str:
        return f"<ctx operation={self.operation!r}>"


# The only attribute names connector code may read on each ctx type; enforced by the
# ``_getattr_`` guard in addition to the underscore rule.
PUBLIC_ATTRIBUTES: dict[type, frozenset[str]] = {
    Context: frozenset(
        {"operation", "params", "secrets", "http", "files", "log", "base64_encode", "base64_decode"}
    ),
    Files: frozenset({"store", "download"}),
    Secrets: frozenset({"get"}),
    Http: frozenset({"get", "post", "put", "patch", "delete"}),
    Response: frozenset({"status", "status_text", "headers", "body", "url", "text", "json"}),
    HttpRequestRefused: frozenset({"code", "args"}),
}
