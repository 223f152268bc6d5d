"""Messages exchanged between the host and a sandbox worker, and the HTTP shapes.

The worker never performs network I/O (DESIGN §4.3): ``ctx.http.*`` in connector
code becomes an :class:`HttpRequest` sent over the worker's pipe; the host applies
its egress policy, performs the request and answers with an :class:`HttpResponse`.
Both are plain data with exact types so the host can treat every message from the
worker as hostile.

Each message travels as one frame (:mod:`bollard.sandbox.frames`: an 8-byte header,
the message as UTF-8 JSON, then a body part of raw bytes). The host checks every field
of every worker message for its exact type and size (:func:`parse_http_request`,
:func:`parse_result`, :func:`parse_error`), and refuses a body on anything but an
``http`` message that announces one and a ``file_store``.

Messages (``type`` field; "+ body" marks the body part):

- host -> worker: ``load`` {source, filename}; ``execute`` {entrypoint, operation,
  params, secrets, cpu_time_ms, max_result_bytes, max_log_bytes, files (bool: whether
  ``ctx.files`` is offered)}; ``http_response``
  {status, status_text, headers, url} + body; ``http_error`` {code, message}.
- worker -> host: ``ready`` {layers, pid}; ``loaded`` {ok, errors}; ``http`` {method,
  url, headers, params, json?, body, binary_body (bool), response_type, form_fields?}
  + the binary body when ``binary_body`` is true; ``file_store`` {file_name,
  content_type} + the file's bytes; ``file_download`` {url, headers, file_name};
  ``result`` {value, logs, discard}; ``error`` {kind, message, line, code, logs, discard}.
  ``discard: true`` asks the host not to reuse the worker (it failed mid-answer);
  the host honours it, as it only lowers trust.
- host -> worker, answering ``file_store`` / ``file_download``: ``file_reference``
  {file: {fileId, url, fileName, contentType, size}} (Tale's FileReference, handed to
  the connector as is), or ``http_error`` {code, message} for a refusal.

``form_fields`` (multipart/form-data, Tale's ``formFields``): a list of at most
:data:`MAX_FORM_FIELDS` objects {name, value, file_name, content_type, is_base64}
(``file_name``/``content_type`` null for a plain field); ``is_base64`` means ``value``
is base64 text the host decodes into the part's bytes. The worker decodes
``ctx.files.store`` data (``encoding: 'base64'`` or UTF-8 text) into raw bytes before
sending, so the body part is always the file itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import HttpRequestRefused, truncate
from .frames import ProtocolError

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
FILE_ENCODINGS = ("utf-8", "base64")  # ctx.files.store(data, {encoding}) (Tale)
RESPONSE_TYPES = (None, "text", "base64")

MAX_URL_CHARS = 8192
MAX_HEADERS = 100
MAX_HEADER_CHARS = 8192  # per name or value
MAX_QUERY_PARAMS = 1000
MAX_REQUEST_BODY_BYTES = 10 * 1024 * 1024
MAX_LOG_LINES = 10_000
MAX_FORM_FIELDS = 100
MAX_FORM_NAME_CHARS = 1000  # a form field's name
MAX_FILE_NAME_CHARS = 255  # a file name (form part or stored file); the host sanitises it again
MAX_CONTENT_TYPE_CHARS = 255
ERROR_KINDS = frozenset({"connector", "memory", "http", "result_too_large", "not_json", "missing_entrypoint"})


@dataclass(frozen=True)
class FormField:
    """One part of a multipart/form-data body (Tale's ``FormFieldInput``): ``name``,
    ``value`` (text; base64 text when ``is_base64``), optional ``file_name`` and
    ``content_type`` (a file part)."""

    name: str
    value: str
    file_name: str | None = None
    content_type: str | None = None
    is_base64: bool = False


@dataclass(frozen=True)
class HttpRequest:
    """One ``ctx.http.<method>(...)`` call as the host receives it.

    - ``method``: one of :data:`HTTP_METHODS`.
    - ``url``: the absolute URL the connector asked for (not yet checked).
    - ``headers``: header names and values, both ``str``.
    - ``params``: query parameters to append (values already ``str`` or lists of ``str``).
    - ``json``: a JSON-serialisable body, sent as ``application/json``; or
    - ``body``: a text body; or
    - ``binary_body``: raw bytes (the connector passes base64 text or bytes).
    - ``form_fields``: a multipart/form-data body (:class:`FormField` parts), or
      ``None``; exclusive with ``json``, ``body`` and ``binary_body``.
    - ``response_type``: ``None`` (JSON for JSON content types, text otherwise) or
      ``"base64"`` (the body comes back base64-encoded) or ``"text"``.
    """

    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str | list[str]] | None = None
    json: Any = None
    body: str | None = None
    binary_body: bytes | None = None
    response_type: str | None = None
    form_fields: tuple[FormField, ...] | None = None


@dataclass(frozen=True)
class FileStore:
    """``ctx.files.store(data, {contentType, fileName})`` as the host receives it:
    ``data`` the file's bytes (already decoded by the worker), ``file_name`` and
    ``content_type`` as the connector gave them (not yet sanitised)."""

    data: bytes
    file_name: str | None = None
    content_type: str | None = None


@dataclass(frozen=True)
class FileDownload:
    """``ctx.files.download(url, {headers, fileName})``: the host GETs ``url`` under
    the egress policy and limits of the execution and stores the body."""

    url: str
    headers: dict[str, str] = field(default_factory=dict)
    file_name: str | None = None


@dataclass(frozen=True)
class HttpResponse:
    """The host's answer to an :class:`HttpRequest`.

    ``headers`` keys are lower-case. ``body`` holds the raw response bytes (already
    capped at the per-request response limit); the worker turns it into JSON, text
    or base64 text for the connector according to ``response_type`` and the
    content type. ``url`` is the final URL after redirects.
    """

    status: int
    status_text: str
    headers: dict[str, str]
    body: bytes
    url: str = ""


# --- field checks (host side: every worker message is hostile) --------------------------


def _str(message: dict[str, Any], key: str, max_chars: int) -> str:
    value = message.get(key)
    if type(value) is not str or len(value) > max_chars:
        raise ProtocolError(f"field {key!r} must be a string of at most {max_chars} characters")
    return value


def _optional_str(message: dict[str, Any], key: str, max_chars: int) -> str | None:
    if message.get(key) is None:
        return None
    return _str(message, key, max_chars)


def parse_http_request(message: dict[str, Any], body: bytes = b"") -> HttpRequest:
    """Check a worker ``http`` message (and the ``body`` part of its frame) field by
    field and build an :class:`HttpRequest`.

    Raises ``ProtocolError`` on any unexpected type, value or size (limits in this
    module: :data:`MAX_URL_CHARS`, :data:`MAX_HEADERS`, :data:`MAX_HEADER_CHARS`,
    :data:`MAX_QUERY_PARAMS`, :data:`MAX_REQUEST_BODY_BYTES`).
    """
    method = message.get("method")
    if type(method) is not str or method not in HTTP_METHODS:
        raise ProtocolError("field 'method' must be one of " + ", ".join(HTTP_METHODS))
    url = _str(message, "url", MAX_URL_CHARS)
    headers = _headers(message)
    params = message.get("params")
    if params is not None:
        if type(params) is not dict or len(params) > MAX_QUERY_PARAMS:
            raise ProtocolError("field 'params' must be an object of query parameters")
        for value in params.values():
            items = value if type(value) is list else [value]
            if len(items) > MAX_QUERY_PARAMS or any(type(v) is not str for v in items):
                raise ProtocolError("query parameter values must be strings or lists of strings")
    has_json = "json" in message
    form_fields = _form_fields(message.get("form_fields"))
    text = _optional_str(message, "body", MAX_REQUEST_BODY_BYTES)
    binary = message.get("binary_body", False)
    if type(binary) is not bool:
        raise ProtocolError("field 'binary_body' must be true or false")
    if (body and not binary) or len(body) > MAX_REQUEST_BODY_BYTES:
        raise ProtocolError("a request body is only sent with binary_body, within its cap")
    if has_json + (text is not None) + binary + (form_fields is not None) > 1:
        raise ProtocolError("a request has at most one of json, body, binary_body and form_fields")
    response_type = message.get("response_type")
    if response_type not in RESPONSE_TYPES:
        raise ProtocolError("field 'response_type' must be null, 'text' or 'base64'")
    return HttpRequest(
        method=method,
        url=url,
        headers=headers,
        params=params,
        json=message.get("json"),
        body=text,
        binary_body=bytes(body) if binary else None,
        response_type=response_type,
        form_fields=form_fields,
    )


def _headers(message: dict[str, Any]) -> dict[str, str]:
    headers = message.get("headers")
    if type(headers) is not dict or len(headers) > MAX_HEADERS:
        raise ProtocolError(f"field 'headers' must be an object of at most {MAX_HEADERS} entries")
    for name, value in headers.items():
        if type(value) is not str or len(name) > MAX_HEADER_CHARS or len(value) > MAX_HEADER_CHARS:
            raise ProtocolError("header names and values must be short strings")
    return headers


_FORM_FIELD_KEYS = frozenset({"name", "value", "file_name", "content_type", "is_base64"})


def _form_fields(value: Any) -> tuple[FormField, ...] | None:
    if value is None:
        return None
    if type(value) is not list or len(value) > MAX_FORM_FIELDS:
        raise ProtocolError(f"field 'form_fields' must be a list of at most {MAX_FORM_FIELDS} parts")
    parts: list[FormField] = []
    total = 0
    for item in value:
        if type(item) is not dict or not item.keys() <= _FORM_FIELD_KEYS:
            raise ProtocolError("each form field must be an object of " + ", ".join(sorted(_FORM_FIELD_KEYS)))
        is_base64 = item.get("is_base64", False)
        if type(is_base64) is not bool:
            raise ProtocolError("form field 'is_base64' must be true or false")
        part = FormField(
            name=_str(item, "name", MAX_FORM_NAME_CHARS),
            value=_str(item, "value", MAX_REQUEST_BODY_BYTES * 4 // 3),
            file_name=_optional_str(item, "file_name", MAX_FILE_NAME_CHARS),
            content_type=_optional_str(item, "content_type", MAX_CONTENT_TYPE_CHARS),
            is_base64=is_base64,
        )
        total += len(part.value)
        parts.append(part)
    if total > MAX_REQUEST_BODY_BYTES * 4 // 3:
        raise ProtocolError("the form fields exceed the request body cap")
    return tuple(parts)


def parse_file_store(message: dict[str, Any], body: bytes) -> FileStore:
    """Check a worker ``file_store`` message; the frame's body part is the file.
    ``ProtocolError`` on a wrong type or size (the file's own caps are the host's
    file store settings, checked there)."""
    return FileStore(
        data=bytes(body),
        file_name=_optional_str(message, "file_name", MAX_FILE_NAME_CHARS),
        content_type=_optional_str(message, "content_type", MAX_CONTENT_TYPE_CHARS),
    )


def parse_file_download(message: dict[str, Any]) -> FileDownload:
    """Check a worker ``file_download`` message (no body part)."""
    return FileDownload(
        url=_str(message, "url", MAX_URL_CHARS),
        headers=_headers(message),
        file_name=_optional_str(message, "file_name", MAX_FILE_NAME_CHARS),
    )


def file_reference_message(reference: dict[str, Any]) -> dict[str, Any]:
    """The ``file_reference`` reply: Tale's FileReference ``{fileId, url, fileName,
    contentType, size}`` (plain values, built by the host)."""
    return {
        "type": "file_reference",
        "file": {
            "fileId": str(reference["fileId"]),
            "url": str(reference["url"]),
            "fileName": str(reference["fileName"]),
            "contentType": str(reference["contentType"]),
            "size": int(reference["size"]),
        },
    }


def http_response_message(response: HttpResponse) -> dict[str, Any]:
    """The ``http_response`` message for the worker (header names lower-cased); the
    body travels as the frame's body part."""
    return {
        "type": "http_response",
        "status": int(response.status),
        "status_text": str(response.status_text),
        "headers": {str(k).lower(): str(v) for k, v in response.headers.items()},
        "url": str(response.url),
    }


def http_error_message(error: HttpRequestRefused) -> dict[str, Any]:
    """The ``http_error`` message carrying a refusal from the host to the worker:
    ``{"type": "http_error", "code", "message"}``, the message cut to
    :data:`~bollard.sandbox.errors.MAX_MESSAGE_CHARS`."""
    return {"type": "http_error", "code": str(error.code), "message": truncate(str(error.message))}


def parse_http_error(message: dict[str, Any]) -> HttpRequestRefused:
    """The :class:`~bollard.sandbox.errors.HttpRequestRefused` an ``http_error`` message
    stands for; the worker raises it inside connector code."""
    return HttpRequestRefused(str(message.get("code")), str(message.get("message")))


def _logs(message: dict[str, Any], max_bytes: int) -> list[str]:
    logs = message.get("logs")
    if type(logs) is not list or len(logs) > MAX_LOG_LINES:
        raise ProtocolError("field 'logs' must be a list of strings")
    total = 0
    for line in logs:
        if type(line) is not str:
            raise ProtocolError("field 'logs' must be a list of strings")
        total += len(line)
    if total > max_bytes:
        raise ProtocolError("field 'logs' exceeds the log limit")
    return logs


def parse_result(message: dict[str, Any], max_log_bytes: int) -> tuple[Any, list[str]]:
    """``(value, logs)`` of a worker ``result`` message. The value is already plain
    JSON (it came out of :func:`~bollard.sandbox.frames.decode_payload`); logs are checked."""
    if "value" not in message:
        raise ProtocolError("a result message needs a 'value'")
    return message["value"], _logs(message, max_log_bytes)


@dataclass(frozen=True)
class WorkerFailure:
    """A worker ``error`` message, checked: ``kind`` (one of :data:`ERROR_KINDS`),
    ``message`` (≤ 10 000 chars), ``line`` (int or None), ``code`` (for ``http``)."""

    kind: str
    message: str
    line: int | None
    code: str | None
    logs: list[str]


def parse_error(message: dict[str, Any], max_log_bytes: int) -> WorkerFailure:
    """Check a worker ``error`` message; ``ProtocolError`` when malformed."""
    kind = message.get("kind")
    if type(kind) is not str or kind not in ERROR_KINDS:
        raise ProtocolError("unknown error kind")
    line = message.get("line")
    if line is not None and (type(line) is not int or not 0 <= line < 10**7):
        raise ProtocolError("field 'line' must be a line number")
    return WorkerFailure(
        kind=kind,
        message=_str(message, "message", 10_000),
        line=line,
        code=_optional_str(message, "code", 100),
        logs=_logs(message, max_log_bytes),
    )
