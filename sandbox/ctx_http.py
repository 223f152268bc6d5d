"""``ctx.http`` (DESIGN §3, §4): the request checks, the multipart form fields and the
:class:`Response` connector code sees. Runs in the worker; the rules of :mod:`.ctx` hold
here too (``__slots__``, ``type(x) is ...`` checks, plain values only).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import json
from collections.abc import Callable
from typing import Any

from .frames import plain_json
from .protocol import (
    MAX_CONTENT_TYPE_CHARS,
    MAX_FILE_NAME_CHARS,
    MAX_FORM_FIELDS,
    MAX_FORM_NAME_CHARS,
    MAX_HEADER_CHARS,
    MAX_HEADERS,
    MAX_QUERY_PARAMS,
    MAX_REQUEST_BODY_BYTES,
    MAX_URL_CHARS,
    RESPONSE_TYPES,
)

# Sends one ``http`` message (and its binary body, or b"") to the host and returns its
# ``http_response`` message and the response body; raises HttpRequestRefused for an
# ``http_error`` answer.
Transport = Callable[[dict[str, Any], bytes], tuple[dict[str, Any], bytes]]


def _media_type(headers: dict[str, str]) -> tuple[str, str | None]:
    content_type = headers.get("content-type", "")
    main, _, rest = content_type.partition(";")
    charset = None
    for part in rest.split(";"):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip('"') or None
    return main.strip().lower(), charset


def _is_json(media_type: str) -> bool:
    return media_type in ("application/json", "text/json") or media_type.endswith("+json")


def _decode_text(raw: bytes, charset: str | None) -> str:
    if charset:
        try:
            codecs.lookup(charset)
        except (LookupError, ImportError, OSError):
            charset = None
    return raw.decode(charset or "utf-8", "replace")


class Response:
    """The answer to a ``ctx.http`` call: ``status`` (int), ``status_text`` (str),
    ``headers`` (dict, lower-case names), ``body`` (parsed JSON for JSON content types,
    text otherwise, base64 text with ``response_type="base64"``), ``url`` (final URL);
    ``text()`` and ``json()`` decode the raw body again on each call."""

    __slots__ = ("status", "status_text", "headers", "body", "url", "_raw", "_charset")

    def __init__(self, message: dict[str, Any], raw: bytes, response_type: str | None) -> None:
        # The host's message: JSON-decoded (exact types), header names lower-cased.
        headers = message["headers"]
        self.status = int(message["status"])
        self.status_text = str(message["status_text"])
        self.headers = headers
        self.url = str(message.get("url", ""))
        self._raw = raw
        media_type, self._charset = _media_type(headers)
        if response_type == "base64":
            self.body: Any = base64.b64encode(self._raw).decode("ascii")
        elif response_type is None and _is_json(media_type) and self._raw.strip():
            try:
                self.body = self.json()
            except ValueError:
                self.body = self.text()
        else:
            self.body = self.text()

    def text(self) -> str:
        """The body decoded as text (charset from Content-Type, UTF-8 by default)."""
        return _decode_text(self._raw, self._charset)

    def json(self) -> Any:
        """The body parsed as JSON; raises ``ValueError`` when it is not JSON."""
        return json.loads(self.text())

    def __repr__(self) -> str:
        return f"<Response [{self.status}]>"


def check_headers(headers: Any) -> dict[str, str]:
    if headers is None:
        return {}
    if type(headers) is not dict:
        raise TypeError("headers must be a dict of str to str")
    if len(headers) > MAX_HEADERS:
        raise ValueError(f"at most {MAX_HEADERS} headers are allowed")
    out: dict[str, str] = {}
    for name, value in dict.items(headers):
        if type(name) is not str or type(value) is not str:
            raise TypeError("header names and values must be str")
        if len(name) > MAX_HEADER_CHARS or len(value) > MAX_HEADER_CHARS:
            raise ValueError(f"header names and values are limited to {MAX_HEADER_CHARS} characters")
        out[name] = value
    return out


def _param_value(value: object) -> str:
    if type(value) is str:
        return value
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is int or type(value) is float:
        return repr(value)
    raise TypeError("query parameter values must be str, int, float, bool or a list of those")


def _check_params(params: Any) -> dict[str, str | list[str]] | None:
    if params is None:
        return None
    if type(params) is not dict:
        raise TypeError("params must be a dict")
    if len(params) > MAX_QUERY_PARAMS:
        raise ValueError(f"at most {MAX_QUERY_PARAMS} query parameters are allowed")
    out: dict[str, str | list[str]] = {}
    for name, value in dict.items(params):
        if type(name) is not str:
            raise TypeError("query parameter names must be str")
        if value is None:
            continue
        if type(value) is list or type(value) is tuple:
            if len(value) > MAX_QUERY_PARAMS:
                raise ValueError(f"at most {MAX_QUERY_PARAMS} values per query parameter")
            out[name] = [_param_value(v) for v in value]
        else:
            out[name] = _param_value(value)
    return out


def _binary(value: Any) -> bytes:
    if type(value) is bytes:
        raw = value
    elif type(value) is str:
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("binary_body must be base64 text (or bytes)") from None
    else:
        raise TypeError("binary_body must be base64 text (or bytes)")
    if len(raw) > MAX_REQUEST_BODY_BYTES:
        raise ValueError(f"request bodies are limited to {MAX_REQUEST_BODY_BYTES} bytes")
    return raw


# Tale's FormFieldInput keys, and their snake_case spellings for Python connectors.
_FORM_KEYS = {
    "name": "name",
    "value": "value",
    "fileName": "file_name",
    "file_name": "file_name",
    "contentType": "content_type",
    "content_type": "content_type",
    "isBase64": "is_base64",
    "is_base64": "is_base64",
}


def optional_text(value: Any, what: str, max_chars: int) -> str | None:
    if value is None:
        return None
    if type(value) is not str:
        raise TypeError(f"{what} must be a str")
    if len(value) > max_chars:
        raise ValueError(f"{what} is limited to {max_chars} characters")
    return value


def _form_field(item: Any, index: int) -> dict[str, Any]:
    where = f"form_fields[{index}]"
    if type(item) is not dict:
        raise TypeError(f"{where} must be a dict with name and value")
    part: dict[str, Any] = {"file_name": None, "content_type": None, "is_base64": False}
    for key, value in dict.items(item):
        wire = _FORM_KEYS.get(key) if type(key) is str else None
        if wire is None:
            raise ValueError(
                f"{where} has an unknown key {key!r} (name, value, fileName, contentType, isBase64)"
            )
        part[wire] = value
    if type(part.get("name")) is not str or len(part["name"]) > MAX_FORM_NAME_CHARS:
        raise TypeError(f"{where}.name must be a str of at most {MAX_FORM_NAME_CHARS} characters")
    if type(part.get("value")) is not str:
        raise TypeError(f"{where}.value must be a str (base64 text with isBase64)")
    if type(part["is_base64"]) is not bool:
        raise TypeError(f"{where}.isBase64 must be True or False")
    if part["is_base64"]:
        try:
            base64.b64decode(part["value"], validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{where}.value is not valid base64 (isBase64 is set)") from None
    part["file_name"] = optional_text(part["file_name"], f"{where}.fileName", MAX_FILE_NAME_CHARS)
    part["content_type"] = optional_text(part["content_type"], f"{where}.contentType", MAX_CONTENT_TYPE_CHARS)
    return part


def _check_form_fields(fields: Any) -> list[dict[str, Any]]:
    if type(fields) is not list and type(fields) is not tuple:
        raise TypeError("form_fields must be a list of dicts")
    if len(fields) > MAX_FORM_FIELDS:
        raise ValueError(f"at most {MAX_FORM_FIELDS} form fields are allowed")
    parts = [_form_field(item, i) for i, item in enumerate(fields)]
    if sum(len(p["value"]) for p in parts) > MAX_REQUEST_BODY_BYTES * 4 // 3:
        raise ValueError(f"request bodies are limited to {MAX_REQUEST_BODY_BYTES} bytes")
    return parts


class Http:
    """``ctx.http``: ``get/post/put/patch/delete(url, *, headers=None, params=None,
    json=None, body=None, binary_body=None, response_type=None) -> Response``.

    Each call is one blocking round trip to the host, which applies the egress policy
    and makes the request. Non-2xx answers are returned; a refused or failed request
    raises :class:`~bollard.sandbox.errors.HttpRequestRefused` (connectors catch it
    with ``except Exception as e`` and read ``e.code``). Arguments: ``url`` str;
    ``headers`` dict of str to str;
    ``params`` dict of str to str/int/float/bool (or lists of them; ``None`` values are
    dropped); at most one of ``json`` (plain JSON data), ``body`` (str), ``binary_body``
    (base64 text or bytes) and ``form_fields`` (a multipart/form-data body: a list of
    at most 100 dicts ``{name, value, fileName?, contentType?, isBase64?}``, Tale's
    ``formFields``; snake_case keys work too); ``response_type`` None, "text" or "base64".
    Wrong types raise ``TypeError``, oversized values ``ValueError``.
    """

    __slots__ = ("_send",)

    def __init__(self, send: Transport) -> None:
        self._send = send

    def _request(
        self,
        method: str,
        url: Any,
        headers: Any,
        params: Any,
        json: Any,
        body: Any,
        binary_body: Any,
        response_type: Any,
        form_fields: Any = None,
    ) -> Response:
        if type(url) is not str:
            raise TypeError("url must be a str")
        if len(url) > MAX_URL_CHARS:
            raise ValueError(f"urls are limited to {MAX_URL_CHARS} characters")
        # Exact type first: a connector object's __eq__ could claim to be "base64".
        if response_type is not None and (
            type(response_type) is not str or response_type not in RESPONSE_TYPES
        ):
            raise ValueError("response_type must be None, 'text' or 'base64'")
        given = (
            (json is not None) + (body is not None) + (binary_body is not None) + (form_fields is not None)
        )
        if given > 1:
            raise ValueError("pass at most one of json, body, binary_body and form_fields")
        message: dict[str, Any] = {
            "type": "http",
            "method": method,
            "url": url,
            "headers": check_headers(headers),
            "params": _check_params(params),
            "body": None,
            "binary_body": False,
            "response_type": response_type,
        }
        raw = b""
        if json is not None:
            message["json"] = plain_json(json, "json")
        if body is not None:
            if type(body) is not str:
                raise TypeError("body must be a str (use binary_body for bytes)")
            if len(body) > MAX_REQUEST_BODY_BYTES:
                raise ValueError(f"request bodies are limited to {MAX_REQUEST_BODY_BYTES} bytes")
            message["body"] = body
        if binary_body is not None:
            raw = _binary(binary_body)
            message["binary_body"] = True
        if form_fields is not None:
            message["form_fields"] = _check_form_fields(form_fields)
        reply, body = self._send(message, raw)
        return Response(reply, body, response_type)

    def get(
        self,
        url: Any,
        *,
        headers: Any = None,
        params: Any = None,
        json: Any = None,
        body: Any = None,
        binary_body: Any = None,
        response_type: Any = None,
        form_fields: Any = None,
    ) -> Response:
        """GET ``url``; see the class docstring for the arguments."""
        return self._request("GET", url, headers, params, json, body, binary_body, response_type, form_fields)

    def post(
        self,
        url: Any,
        *,
        headers: Any = None,
        params: Any = None,
        json: Any = None,
        body: Any = None,
        binary_body: Any = None,
        response_type: Any = None,
        form_fields: Any = None,
    ) -> Response:
        """POST to ``url``; see the class docstring for the arguments."""
        return self._request(
            "POST", url, headers, params, json, body, binary_body, response_type, form_fields
        )

    def put(
        self,
        url: Any,
        *,
        headers: Any = None,
        params: Any = None,
        json: Any = None,
        body: Any = None,
        binary_body: Any = None,
        response_type: Any = None,
        form_fields: Any = None,
    ) -> Response:
        """PUT to ``url``; see the class docstring for the arguments."""
        return self._request("PUT", url, headers, params, json, body, binary_body, response_type, form_fields)

    def patch(
        self,
        url: Any,
        *,
        headers: Any = None,
        params: Any = None,
        json: Any = None,
        body: Any = None,
        binary_body: Any = None,
        response_type: Any = None,
        form_fields: Any = None,
    ) -> Response:
        """PATCH ``url``; see the class docstring for the arguments."""
        return self._request(
            "PATCH", url, headers, params, json, body, binary_body, response_type, form_fields
        )

    def delete(
        self,
        url: Any,
        *,
        headers: Any = None,
        params: Any = None,
        json: Any = None,
        body: Any = None,
        binary_body: Any = None,
        response_type: Any = None,
        form_fields: Any = None,
    ) -> Response:
        """DELETE ``url``; see the class docstring for the arguments."""
        return self._request(
            "DELETE", url, headers, params, json, body, binary_body, response_type, form_fields
        )

    def __repr__(self) -> str:
        return "<ctx.http>"
