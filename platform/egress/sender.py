"""The host-side HTTP sender for ``ctx.http`` and its client (DESIGN §4).

Connector code never touches the network: each ``ctx.http.*`` call reaches the host as
an :class:`~bollard.sandbox.protocol.HttpRequest`, and :func:`send` checks it under an
:class:`~.policy.EgressPolicy` and performs it with the client from :func:`make_client`:

- connector headers are validated; connection-level headers belong to the host;
- the request goes to a checked address (:mod:`.pinned`), TLS verified for the name;
- redirects are followed here, at most :data:`MAX_REDIRECTS` hops, each checked like a
  new request; ``Authorization``, ``Cookie`` and ``Proxy-Authorization`` are dropped
  when the origin changes;
- the budgets of one request: the decoded response body is capped at
  ``max_response_bytes``, and ``timeout_s`` bounds the whole call (DNS and redirects
  included).

Every refusal or failure raises :class:`~bollard.sandbox.errors.HttpRequestRefused`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import ssl
from collections.abc import Mapping
from http.cookiejar import CookieJar, DefaultCookiePolicy
from urllib.parse import urljoin

import httpx

from bollard.sandbox.errors import HttpRequestRefused
from bollard.sandbox.protocol import HTTP_METHODS, HttpRequest, HttpResponse

from .addresses import IPAddress
from .pinned import PinnedTransport, pinned_host
from .policy import Destination, EgressPolicy
from .urls import Target

__all__ = ["MAX_REDIRECTS", "USER_AGENT", "EgressClient", "make_client", "send"]

MAX_REDIRECTS = 5
"""Redirect hops :func:`send` follows before refusing (DESIGN §4)."""

USER_AGENT = "Bollard"

# httpx logs every request URL at INFO and httpcore every header at DEBUG; connector URLs
# and headers carry secrets (``?api_key=…``, ``Authorization``), so neither may log
# below WARNING, whatever level the operator sets for the root logger (DESIGN §7).
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)

# --------------------------------------------------------------------------- client


class EgressClient(httpx.AsyncClient):
    """The shared client :func:`send` requires; made by :func:`make_client`."""


def make_client(
    *,
    ssl_context: ssl.SSLContext | None = None,
    max_connections: int = 100,
    max_keepalive_connections: int = 20,
    keepalive_expiry_s: float = 30.0,
) -> EgressClient:
    """Create the host's one shared client for connector egress (DESIGN §4.3).

    ``trust_env=False`` (no proxy variables, no ``SSL_CERT_FILE``), no automatic
    redirects, a cookie jar that stores nothing (cookies must not leak between
    integrations), and a transport that dials only policy-checked addresses
    (:class:`~.pinned.PinnedTransport`). ``ssl_context`` defaults to certifi's CA
    bundle with hostname checking; tests pass one trusting their own CA. At most
    ``max_connections`` connections, ``max_keepalive_connections`` of them idle for up
    to ``keepalive_expiry_s`` seconds. Close it with ``await client.aclose()`` at shutdown.
    """
    context = ssl_context or httpx.create_ssl_context(trust_env=False)
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_keepalive_connections,
        keepalive_expiry=keepalive_expiry_s,
    )
    return EgressClient(
        transport=PinnedTransport(context, limits),
        trust_env=False,
        follow_redirects=False,
        cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
    )


# --------------------------------------------------------------------------- send

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
_CREDENTIAL_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

Headers = list[tuple[str, str]]


def _connector_error(message: str) -> HttpRequestRefused:
    return HttpRequestRefused("connector_error", message)


def _request_headers(headers: Mapping[str, str]) -> Headers:
    """Validate connector headers; messages name headers, never their values."""
    out: Headers = []
    for name, value in headers.items():
        if type(name) is not str or type(value) is not str:
            raise _connector_error("ctx.http header names and values must be strings.")
        if not _TOKEN_RE.fullmatch(name):
            raise _connector_error(f"{name[:60]!r} is not a valid HTTP header name.")
        lower = name.lower()
        if lower in _FORBIDDEN_HEADERS or lower.startswith(_FORBIDDEN_PREFIXES):
            raise _connector_error(
                f"ctx.http may not set the {name} header; Bollard sets connection headers itself."
            )
        if "\r" in value or "\n" in value or "\0" in value:
            raise _connector_error(f"The value of the {name} header contains a line break.")
        out.append((name, value))
    return out


def _encoded(headers: Headers) -> list[tuple[bytes, bytes]]:
    # httpx would encode str values as ASCII and fail on anything else; send UTF-8.
    return [(name.encode("ascii"), value.encode("utf-8")) for name, value in headers]


def _request_body(request: HttpRequest) -> tuple[bytes | None, str | None]:
    """``(content, default content type)`` from exactly one of json/body/binary_body."""
    given = (request.json is not None) + (request.body is not None)
    given += request.binary_body is not None
    if given > 1:
        raise _connector_error("Pass only one of json, body and binary_body.")
    if request.json is not None:
        try:
            text = json.dumps(request.json, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise _connector_error(f"The json body cannot be sent as JSON: {exc}.") from None
        return text.encode("utf-8"), "application/json"
    if request.body is not None:
        return request.body.encode("utf-8"), "text/plain; charset=utf-8"
    if request.binary_body is not None:
        return bytes(request.binary_body), "application/octet-stream"
    return None, None


def _has(headers: Headers, lower_name: str) -> bool:
    return any(name.lower() == lower_name for name, _ in headers)


def _build_request(
    target: Target,
    address: IPAddress,
    method: str,
    headers: Headers,
    content: bytes | None,
    timeout_s: float,
) -> httpx.Request:
    url = httpx.URL(
        scheme=target.scheme,
        host=pinned_host(address, target.host),
        port=target.port,
        path=target.path,
        query=None if target.query is None else target.query.encode("ascii"),
    )
    return httpx.Request(
        method,
        url,
        headers=[(b"Host", target.netloc.encode("ascii")), *_encoded(headers)],
        content=content,
        extensions={
            # TLS (SNI and certificate check) is for the name, not the pinned address.
            "sni_hostname": target.host,
            "timeout": dict.fromkeys(("connect", "read", "write", "pool"), timeout_s),
        },
    )


def _response_headers(response: httpx.Response) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in response.headers.multi_items():
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def _network_message(target: Target, exc: Exception) -> str:
    cause: BaseException | None = exc
    for _ in range(5):  # httpx wraps httpcore, which wraps the ssl/OS error
        if cause is None:
            break
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"The TLS certificate of {target.origin} was not accepted: {cause.verify_message}."
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpx.ConnectError):
        return f"Could not connect to {target.origin}: {str(exc)[:200] or 'connection failed'}."
    return f"The connection to {target.origin} failed ({type(exc).__name__})."


async def _open(
    client: httpx.AsyncClient,
    destination: Destination,
    method: str,
    headers: Headers,
    content: bytes | None,
    timeout_s: float,
) -> httpx.Response:
    """Send to the first checked address that accepts a connection; stream the response."""
    failure: httpx.ConnectError | None = None
    for address in destination.addresses:
        request = _build_request(destination.target, address, method, headers, content, timeout_s)
        try:
            return await client.send(request, stream=True, auth=None, follow_redirects=False)
        except httpx.ConnectError as exc:
            failure = exc  # nothing was sent yet; try the next address
    assert failure is not None
    raise HttpRequestRefused("network_error", _network_message(destination.target, failure))


async def _read_body(response: httpx.Response, target: Target, limit: int) -> bytes:
    """Read the (decoded) body, refusing it once it passes ``limit`` bytes."""
    too_large = HttpRequestRefused(
        "limit_exceeded",
        f"The response from {target.origin} is larger than {limit} bytes (the response "
        "size limit); request less data, for example with pagination or filters.",
    )
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit and "content-encoding" not in response.headers:
        raise too_large
    chunks: list[bytes] = []
    total = 0
    async for chunk in response.aiter_bytes():
        total += len(chunk)
        if total > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def _follow(
    client: httpx.AsyncClient,
    policy: EgressPolicy,
    target: Target,
    method: str,
    headers: Headers,
    content: bytes | None,
    max_response_bytes: int,
    timeout_s: float,
) -> HttpResponse:
    """Send, following up to :data:`MAX_REDIRECTS` redirects, each hop re-checked."""
    for hop in range(MAX_REDIRECTS + 1):
        try:
            destination = Destination(target, await policy.resolve(target))
        except HttpRequestRefused as exc:
            if hop == 0:
                raise
            raise HttpRequestRefused(exc.code, f"Redirect refused: {exc.message}") from None
        try:
            response = await _open(client, destination, method, headers, content, timeout_s)
            try:
                location = response.headers.get("location", "")
                if response.status_code not in _REDIRECT_STATUSES or not location:
                    body = await _read_body(response, target, max_response_bytes)
                    return HttpResponse(
                        status=response.status_code,
                        status_text=response.reason_phrase,
                        headers=_response_headers(response),
                        body=body,
                        url=target.url,
                    )
            finally:
                await response.aclose()
        except httpx.TimeoutException:
            raise HttpRequestRefused(
                "timeout", f"{method} {target.origin} did not answer within {timeout_s:g} s."
            ) from None
        except httpx.TransportError as exc:
            raise HttpRequestRefused("network_error", _network_message(target, exc)) from None
        if hop == MAX_REDIRECTS:
            break
        try:
            next_target = policy.check_url(urljoin(target.url, location))
        except HttpRequestRefused as exc:
            raise HttpRequestRefused(
                exc.code, f"Redirect from {target.origin} refused: {exc.message}"
            ) from None
        if response.status_code in (301, 302, 303) and method != "GET":
            # RFC 9110 §15.4: browsers (and we) turn these into a GET without a body.
            method, content = "GET", None
            headers = [(n, v) for n, v in headers if n.lower() != "content-type"]
        if (next_target.scheme, next_target.host, next_target.port) != (
            target.scheme,
            target.host,
            target.port,
        ):
            headers = [(n, v) for n, v in headers if n.lower() not in _CREDENTIAL_HEADERS]
        target = next_target
    raise HttpRequestRefused(
        "limit_exceeded",
        f"{target.origin} redirected more than {MAX_REDIRECTS} times; "
        f"Bollard follows at most {MAX_REDIRECTS} redirects.",
    )


async def send(
    client: httpx.AsyncClient,
    policy: EgressPolicy,
    request: HttpRequest,
    *,
    max_response_bytes: int,
    timeout_s: float,
) -> HttpResponse:
    """Perform one ``ctx.http`` request under ``policy`` (DESIGN §4).

    ``client`` must come from :func:`make_client`. ``max_response_bytes`` caps the decoded
    body of the final response; ``timeout_s`` bounds the whole call, redirects and DNS
    included. Non-2xx responses are returned, not raised. Raises ``TypeError`` for a
    client not from :func:`make_client`, and ``HttpRequestRefused`` with code
    ``host_not_allowed`` (policy), ``connector_error`` (bad method, forbidden or invalid
    header, several bodies), ``limit_exceeded`` (response too large, too many redirects),
    ``timeout`` or ``network_error``. Messages name origins, never header values or
    full URLs (which may carry secrets).
    """
    if not isinstance(client, EgressClient):
        raise TypeError("send() needs the client from bollard.platform.egress.make_client()")
    # The request comes from a worker: treat its shape as untrusted too.
    if type(request.url) is not str or type(request.headers) is not dict:
        raise _connector_error("ctx.http needs a URL string and a headers dict.")
    if request.params is not None and type(request.params) is not dict:
        raise _connector_error("ctx.http params must be a dict.")
    method = request.method.upper() if type(request.method) is str else ""
    if method not in HTTP_METHODS:
        raise _connector_error(f"Unsupported HTTP method; use one of {', '.join(HTTP_METHODS)}.")
    headers = _request_headers(request.headers)
    content, content_type = _request_body(request)
    if content_type is not None and not _has(headers, "content-type"):
        headers.append(("Content-Type", content_type))
    if not _has(headers, "user-agent"):
        headers.append(("User-Agent", USER_AGENT))
    if not _has(headers, "accept"):
        headers.append(("Accept", "*/*"))
    target = policy.check_url(request.url)
    if request.params:
        try:
            target = target.with_params(request.params)
        except TypeError as exc:
            raise _connector_error(f"Query parameters could not be encoded: {exc}.") from None
    try:
        async with asyncio.timeout(timeout_s):
            return await _follow(
                client, policy, target, method, headers, content, max_response_bytes, timeout_s
            )
    except TimeoutError:
        raise HttpRequestRefused(
            "timeout", f"{method} {target.origin} did not complete within {timeout_s:g} s."
        ) from None
