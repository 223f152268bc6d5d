"""The host-side HTTP sender for ``ctx.http`` and its client (DESIGN §4).

Connector code never touches the network: each ``ctx.http.*`` call reaches the host as
an :class:`~bollard.sandbox.protocol.HttpRequest`, and :func:`send` checks it under an
:class:`~.policy.EgressPolicy` and performs it with the client from :func:`make_client`:

- connector headers are validated; connection-level headers belong to the host
  (:mod:`.request`);
- the request goes to a checked address (:mod:`.pinned`), TLS verified for the name;
- redirects are followed here, at most :data:`MAX_REDIRECTS` hops, each checked like a
  new request; when the origin changes only a short safe list of headers goes on, none
  holding a secret of the call, and no body (a 307/308 across origins is refused);
- the budgets of one request (:mod:`.budget`): the decoded response body is capped at
  ``max_response_bytes``, raw bytes on the wire, socket reads, body pieces and bytes
  before the final head are bounded, at most one content-coding is decoded (here,
  streaming, capped), and ``timeout_s`` bounds the whole call (DNS, connect, headers,
  body and redirects).

Every refusal or failure raises :class:`~bollard.sandbox.errors.HttpRequestRefused`.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterable, Collection
from urllib.parse import urljoin

import certifi
import httpcore

from bollard.sandbox.errors import HttpRequestRefused
from bollard.sandbox.protocol import HTTP_METHODS, HttpRequest, HttpResponse

from .budget import CURRENT_BUDGET, MAX_HEAD_BYTES, BodyReader, WireBudget, max_events
from .pinned import make_pool
from .policy import Destination, EgressPolicy
from .request import Headers, connector_error, has_header, request_body, request_headers, wire_request
from .urls import Target

__all__ = ["MAX_REDIRECTS", "USER_AGENT", "EgressClient", "make_client", "send"]

MAX_REDIRECTS = 5
"""Redirect hops :func:`send` follows before refusing (DESIGN §4)."""

USER_AGENT = "Bollard"

# httpcore logs every header at DEBUG; connector headers carry secrets (``Authorization``),
# so it may not log below WARNING, whatever level the operator sets for the root logger
# (DESIGN §7).
logging.getLogger("httpcore").setLevel(logging.WARNING)

# --------------------------------------------------------------------------- client


class EgressClient:
    """The shared connection pool :func:`send` requires; made by :func:`make_client`.

    A thin owner of an httpcore pool on the pinned backend (:func:`.pinned.make_pool`):
    no cookie jar (cookies never pass between integrations), no proxy variables, no
    automatic redirects or decoding (the sender does both, under budgets). ``pool`` is
    the httpcore pool; close with ``await client.aclose()`` (or ``async with``).
    """

    def __init__(self, pool: httpcore.AsyncConnectionPool) -> None:
        self.pool = pool

    async def aclose(self) -> None:
        await self.pool.aclose()

    async def __aenter__(self) -> EgressClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def default_ssl_context(extra_ca_bundle: str | None = None) -> ssl.SSLContext:
    """certifi's CA bundle, hostname checking on, ignoring ``SSL_CERT_FILE`` and friends;
    plus the PEM certificates of ``extra_ca_bundle`` (the operator's
    ``BOLLARD_EGRESS_CA_BUNDLE``). Raises ``OSError``/``ssl.SSLError`` for an unreadable
    bundle."""
    context = ssl.create_default_context(cafile=certifi.where())
    if extra_ca_bundle:
        context.load_verify_locations(cafile=extra_ca_bundle)
    return context


def make_client(
    *,
    ssl_context: ssl.SSLContext | None = None,
    max_connections: int = 100,
    max_keepalive_connections: int = 20,
    keepalive_expiry_s: float = 30.0,
) -> EgressClient:
    """Create the host's one shared client for connector egress (DESIGN §4.3).

    The client dials only policy-checked addresses (:mod:`.pinned`). ``ssl_context``
    defaults to :func:`default_ssl_context`; tests pass one trusting their own CA. At
    most ``max_connections`` connections, ``max_keepalive_connections`` of them idle for
    up to ``keepalive_expiry_s`` seconds. httpcore directly, not httpx: the choice and
    its figures are in ``bench/bench_http_client.py``.
    """
    return EgressClient(
        make_pool(
            ssl_context or default_ssl_context(),
            max_connections=max_connections,
            max_keepalive_connections=max_keepalive_connections,
            keepalive_expiry_s=keepalive_expiry_s,
        )
    )


# --------------------------------------------------------------------------- send

# What survives a redirect to another origin (RFC 9110 §15.4 leaves it to the client;
# the Fetch standard's CORS-safelisted request headers, minus Content-Type: no body goes).
_SAFE_CROSS_ORIGIN = frozenset({"accept", "accept-language", "accept-encoding", "user-agent"})
# No default Accept-Encoding: upstreams answer identity unless the connector asks for a
# coding (one of budget.SUPPORTED_CODINGS); one the upstream sends anyway is decoded.
_DEFAULT_HEADERS = (("User-Agent", USER_AGENT), ("Accept", "*/*"))
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


def _text(raw: bytes) -> str:
    try:
        return raw.decode("ascii")
    except UnicodeDecodeError:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw.decode("latin-1")


def _response_headers(response: httpcore.Response) -> dict[str, str]:
    out: dict[str, str] = {}
    for raw_name, raw_value in response.headers:
        key, value = _text(raw_name).lower(), _text(raw_value)
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def _network_message(target: Target, exc: Exception) -> str:
    cause: BaseException | None = exc
    for _ in range(5):  # httpcore wraps the ssl/OS error
        if cause is None:
            break
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"The TLS certificate of {target.origin} was not accepted: {cause.verify_message}."
        cause = cause.__cause__ or cause.__context__
    if isinstance(exc, httpcore.ConnectError):
        return f"Could not connect to {target.origin}: {str(exc)[:200] or 'connection failed'}."
    return f"The connection to {target.origin} failed ({type(exc).__name__})."


async def _open(
    client: EgressClient,
    destination: Destination,
    method: str,
    headers: Headers,
    content: bytes | None,
) -> httpcore.Response:
    """Send to the first checked address that accepts a connection; the response head
    (the body not read yet)."""
    failure: httpcore.ConnectError | None = None
    for address in destination.addresses:
        request = wire_request(destination.target, address, destination.dial_port, method, headers, content)
        try:
            return await client.pool.handle_async_request(request)
        except httpcore.ConnectError as exc:
            failure = exc  # nothing was sent yet; try the next address
    assert failure is not None
    raise HttpRequestRefused("network_error", _network_message(destination.target, failure))


async def _read_body(response: httpcore.Response, target: Target, limit: int) -> bytes:
    """Read the body, decoding its content-coding, under the response budget (:mod:`.budget`)."""
    headers = _response_headers(response)
    reader = BodyReader(headers.get("content-encoding", ""), target.origin, limit, max_events(limit))
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit and "content-encoding" not in headers:
        raise reader.too_large()
    stream = response.stream
    assert isinstance(stream, AsyncIterable)
    async for chunk in stream:
        reader.feed(chunk)
    return reader.result()


def _same_origin(a: Target, b: Target) -> bool:
    return (a.scheme, a.host, a.port) == (b.scheme, b.host, b.port)


def _cross_origin_headers(headers: Headers, secrets: Collection[str]) -> Headers:
    """The headers kept when a redirect changes origin: only the safe list, and none
    whose value holds a secret of the call (DESIGN §4, hardening issue item 4)."""
    return [
        (name, value)
        for name, value in headers
        if name.lower() in _SAFE_CROSS_ORIGIN and not any(s and s in value for s in secrets)
    ]


def _next_hop(
    policy: EgressPolicy,
    target: Target,
    status: int,
    location: str,
    request: tuple[str, Headers, bytes | None],
    secrets: Collection[str],
) -> tuple[Target, str, Headers, bytes | None]:
    """The next hop of a redirect: its checked target, method, headers and body."""
    method, headers, content = request
    try:
        next_target = policy.check_url(urljoin(target.url, location))
    except HttpRequestRefused as exc:
        raise HttpRequestRefused(exc.code, f"Redirect from {target.origin} refused: {exc.message}") from None
    if status in (301, 302, 303) and method not in ("GET", "HEAD"):
        # RFC 9110 §15.4: browsers (and we) turn these into a GET without a body.
        method, content = "GET", None
        headers = [(n, v) for n, v in headers if n.lower() != "content-type"]
    if not _same_origin(target, next_target):
        if method not in ("GET", "HEAD"):
            # A 307/308 would re-send the body (often carrying a secret) to another origin.
            raise HttpRequestRefused(
                "host_not_allowed",
                f"{target.origin} answered {status}, redirecting this {method} to another origin "
                f"({next_target.origin}); Bollard never re-sends a request body across origins. "
                "Send the request to the final URL directly.",
            )
        headers = _cross_origin_headers(headers, secrets)
    return next_target, method, headers, content


async def _hop(
    client: EgressClient,
    policy: EgressPolicy,
    budget: WireBudget,
    target: Target,
    request: tuple[str, Headers, bytes | None],
    max_response_bytes: int,
    first: bool,
) -> HttpResponse | tuple[int, str]:
    """One hop: the final response, or ``(status, location)`` of a redirect."""
    method, headers, content = request
    try:
        destination = Destination(target, await policy.resolve(target), policy.dial_port(target))
    except HttpRequestRefused as exc:
        if first:
            raise
        raise HttpRequestRefused(exc.code, f"Redirect refused: {exc.message}") from None
    budget.start_hop(target.origin)
    try:
        response = await _open(client, destination, method, headers, content)
        try:
            budget.head_done()
            location = _text(next((v for n, v in response.headers if n.lower() == b"location"), b""))
            if response.status in _REDIRECT_STATUSES and location:
                return response.status, location
            reason = response.extensions.get("reason_phrase", b"")
            return HttpResponse(
                status=response.status,
                status_text=_text(reason) if isinstance(reason, bytes) else "",
                headers=_response_headers(response),
                body=await _read_body(response, target, max_response_bytes),
                url=target.url,
            )
        finally:
            await response.aclose()
    except httpcore.TimeoutException:
        raise HttpRequestRefused("timeout", f"{method} {target.origin} did not answer in time.") from None
    except (httpcore.NetworkError, httpcore.ProtocolError) as exc:
        raise HttpRequestRefused("network_error", _network_message(target, exc)) from None


async def _follow(
    client: EgressClient,
    policy: EgressPolicy,
    target: Target,
    request: tuple[str, Headers, bytes | None],
    max_response_bytes: int,
    secrets: Collection[str],
) -> HttpResponse:
    """Send, following up to :data:`MAX_REDIRECTS` redirects, each hop re-checked, under
    one :class:`~.budget.WireBudget` for all hops."""
    budget = WireBudget(
        target.origin,
        max_wire_bytes=max_response_bytes + max_response_bytes // 8 + (MAX_REDIRECTS + 1) * MAX_HEAD_BYTES,
        max_reads=max_events(max_response_bytes),
    )
    token = CURRENT_BUDGET.set(budget)
    try:
        for hop in range(MAX_REDIRECTS + 1):
            answer = await _hop(client, policy, budget, target, request, max_response_bytes, hop == 0)
            if isinstance(answer, HttpResponse):
                return answer
            if hop == MAX_REDIRECTS:
                break
            status, location = answer
            target, method, headers, content = _next_hop(policy, target, status, location, request, secrets)
            request = (method, headers, content)
    finally:
        CURRENT_BUDGET.reset(token)
    raise HttpRequestRefused(
        "limit_exceeded",
        f"{target.origin} redirected more than {MAX_REDIRECTS} times; "
        f"Bollard follows at most {MAX_REDIRECTS} redirects.",
    )


async def send(
    client: EgressClient,
    policy: EgressPolicy,
    request: HttpRequest,
    *,
    max_response_bytes: int,
    timeout_s: float,
    secrets: Collection[str] = (),
) -> HttpResponse:
    """Perform one ``ctx.http`` request under ``policy`` (DESIGN §4).

    ``client`` must come from :func:`make_client`. ``max_response_bytes`` caps the decoded
    body of the final response (and, with framing, the raw bytes on the wire);
    ``timeout_s`` bounds the whole call: DNS, connect, headers, body and redirects.
    ``secrets``: the call's secret values; a redirect to another origin drops every
    header holding one (and every header off a short safe list). Non-2xx responses are
    returned, not raised. Raises ``TypeError`` for a client not from :func:`make_client`,
    and ``HttpRequestRefused`` with code ``host_not_allowed`` (policy; a 307/308 across
    origins), ``connector_error`` (bad method, forbidden or invalid header, several
    bodies), ``limit_exceeded`` (response too large, stacked or unknown content-coding,
    too many pieces or 1xx bytes, too many redirects), ``timeout`` or ``network_error``.
    Messages name origins, never header values or full URLs (which may carry secrets).
    """
    if not isinstance(client, EgressClient):
        raise TypeError("send() needs the client from bollard.platform.egress.make_client()")
    # The request comes from a worker: treat its shape as untrusted too.
    if type(request.url) is not str or type(request.headers) is not dict:
        raise connector_error("ctx.http needs a URL string and a headers dict.")
    if request.params is not None and type(request.params) is not dict:
        raise connector_error("ctx.http params must be a dict.")
    method = request.method.upper() if type(request.method) is str else ""
    if method not in HTTP_METHODS:
        raise connector_error(f"Unsupported HTTP method; use one of {', '.join(HTTP_METHODS)}.")
    headers = request_headers(request.headers)
    content, content_type = request_body(request)
    if request.form_fields is not None:
        # The boundary is ours: a connector's own Content-Type could not match it (Tale
        # also sets it for formFields).
        headers = [(n, v) for n, v in headers if n.lower() != "content-type"]
    if content_type is not None and not has_header(headers, "content-type"):
        headers.append(("Content-Type", content_type))
    for name, default in _DEFAULT_HEADERS:
        if not has_header(headers, name.lower()):
            headers.append((name, default))
    target = policy.check_url(request.url)
    if request.params:
        try:
            target = target.with_params(request.params)
        except TypeError as exc:
            raise connector_error(f"Query parameters could not be encoded: {exc}.") from None
    try:
        async with asyncio.timeout(timeout_s):
            return await _follow(
                client, policy, target, (method, headers, content), max_response_bytes, secrets
            )
    except TimeoutError:
        raise HttpRequestRefused(
            "timeout", f"{method} {target.origin} did not complete within {timeout_s:g} s."
        ) from None
