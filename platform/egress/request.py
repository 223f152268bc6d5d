"""A connector's request as it goes on the wire (DESIGN §4): its headers checked
(connection-level ones belong to the host), its body encoded from exactly one of json,
body, binary body or form fields, and the httpcore request to a pinned address.

Every refusal raises :class:`~bollard.sandbox.errors.HttpRequestRefused` (``connector_error``);
messages name headers, never their values.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

import httpcore

from bollard.sandbox.errors import HttpRequestRefused
from bollard.sandbox.protocol import HttpRequest

from .addresses import IPAddress
from .pinned import pinned_host
from .urls import Target

Headers = list[tuple[str, str]]

_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Connection-level headers belong to the host (research §4.5), plus hop-by-hop ones.
_FORBIDDEN_HEADERS = frozenset(
    {
        "host",
        "connection",
        "transfer-encoding",
        "content-length",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
        "forwarded",
    }
)
_FORBIDDEN_PREFIXES = ("proxy-", "x-forwarded-")
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def connector_error(message: str) -> HttpRequestRefused:
    """The refusal of a malformed connector request (code ``connector_error``)."""
    return HttpRequestRefused("connector_error", message)


def request_headers(headers: Mapping[str, str]) -> Headers:
    """Validate connector headers; messages name headers, never their values."""
    out: Headers = []
    for name, value in headers.items():
        if type(name) is not str or type(value) is not str:
            raise connector_error("ctx.http header names and values must be strings.")
        if not _TOKEN_RE.fullmatch(name):
            raise connector_error(f"{name[:60]!r} is not a valid HTTP header name.")
        lower = name.lower()
        if lower in _FORBIDDEN_HEADERS or lower.startswith(_FORBIDDEN_PREFIXES):
            raise connector_error(
                f"ctx.http may not set the {name} header; Bollard sets connection headers itself."
            )
        if "\r" in value or "\n" in value or "\0" in value:
            raise connector_error(f"The value of the {name} header contains a line break.")
        out.append((name, value))
    return out


def _encoded(headers: Headers) -> list[tuple[bytes, bytes]]:
    """Headers as bytes: names are tokens (ASCII), values go out as UTF-8."""
    return [(name.encode("ascii"), value.encode("utf-8")) for name, value in headers]


def request_body(request: HttpRequest) -> tuple[bytes | None, str | None]:
    """``(content, default content type)`` from exactly one of json/body/binary_body/
    form_fields (multipart, :mod:`.multipart`)."""
    given = (request.json is not None) + (request.body is not None)
    given += (request.binary_body is not None) + (request.form_fields is not None)
    if given > 1:
        raise connector_error("Pass only one of json, body, binary_body and formFields.")
    if request.form_fields is not None:
        from .multipart import encode_form  # lazy: urllib3 only for connectors that send forms

        return encode_form(request.form_fields)
    if request.json is not None:
        try:
            text = json.dumps(request.json, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise connector_error(f"The json body cannot be sent as JSON: {exc}.") from None
        return text.encode("utf-8"), "application/json"
    if request.body is not None:
        return request.body.encode("utf-8"), "text/plain; charset=utf-8"
    if request.binary_body is not None:
        return bytes(request.binary_body), "application/octet-stream"
    return None, None


def has_header(headers: Headers, lower_name: str) -> bool:
    """Whether ``headers`` has one named ``lower_name`` (lower case), in any case."""
    return any(name.lower() == lower_name for name, _ in headers)


def wire_request(
    target: Target, address: IPAddress, port: int, method: str, headers: Headers, content: bytes | None
) -> httpcore.Request:
    """The httpcore request for ``target`` dialled at the checked ``address``:``port``
    (:mod:`.pinned`), with ``Host``, the connector's headers and the framing the host sets."""
    framing: Headers = []
    if content is not None:
        framing.append(("Content-Length", str(len(content))))
    elif method in _BODY_METHODS:
        framing.append(("Content-Length", "0"))  # as httpx and browsers send
    return httpcore.Request(
        method.encode("ascii"),
        httpcore.URL(
            scheme=target.scheme.encode("ascii"),
            host=pinned_host(address, target.host).encode("ascii"),
            port=port,
            target=target.path.encode("ascii")
            + (b"" if target.query is None else b"?" + target.query.encode("ascii")),
        ),
        headers=[(b"Host", target.netloc.encode("ascii")), *_encoded(headers), *_encoded(framing)],
        content=content or b"",
        # TLS (SNI and certificate check) is for the name, not the pinned address.
        extensions={"sni_hostname": target.host},
    )
