"""The egress policy for ``ctx.http`` and the host-side HTTP sender (DESIGN §4).

Connector code never touches the network: each ``ctx.http.*`` call reaches the host as
an :class:`~bollard.sandbox.protocol.HttpRequest`, and :func:`send` decides and performs
it. The rules (DESIGN §4 "Egress policy for ctx.http"; research/restrictedpython.md §4.5):

- ``allowedHosts`` missing or empty means no network at all.
- ``example.com`` allows that host and its subdomains; ``*.example.com`` allows
  subdomains only; a single-label name (``localhost``) or an IP address allows exactly
  that host. Hosts compare lower-cased and IDNA-normalised, one trailing dot ignored.
- https on port 443 only, unless the entry names a scheme or port
  (``http://localhost:8080``, ``https://api.example.com:8443``); both must then match.
- The URL is parsed once, strictly, by :func:`bollard.platform.urls.parse_url` (no
  user-info, no backslash, ``%``, whitespace or control characters in the authority,
  no non-canonical numeric hosts such as ``0x7f000001``), and that parse is what the
  request is built from.
- Every address the name resolves to is checked (:mod:`bollard.platform.addresses`);
  loopback/private/link-local addresses pass only when the operator allows private
  egress *and* an entry names that host or address literally (not through a subdomain
  rule or a wildcard). The connection then goes to a checked address: the shared client
  from :func:`make_client` (:mod:`bollard.platform.pinned`) can only dial addresses
  encoded into the request URL, so there is no second DNS lookup to rebind.
- Redirects are followed here, at most :data:`MAX_REDIRECTS` hops, each checked like a
  new request; ``Authorization``, ``Cookie`` and ``Proxy-Authorization`` are dropped when
  the origin changes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from ipaddress import ip_address
from urllib.parse import urljoin

import httpx
from bollard.platform.addresses import IPAddress, classify_address
from bollard.platform.pinned import EgressClient, make_client, pinned_host
from bollard.platform.urls import (
    DEFAULT_PORTS,
    Target,
    check_authority,
    normalise_host,
    parse_url,
    split_authority,
)
from bollard.sandbox.protocol import (
    HTTP_METHODS,
    HttpRequest,
    HttpRequestRefused,
    HttpResponse,
)

__all__ = [
    "MAX_REDIRECTS",
    "CachingResolver",
    "Destination",
    "EgressClient",
    "EgressPolicy",
    "Resolver",
    "Target",
    "getaddrinfo_resolver",
    "make_client",
    "normalise_host",
    "parse_url",
    "send",
    "system_resolver",
    "validate_allowed_host_entry",
]

MAX_REDIRECTS = 5
"""Redirect hops :func:`send` follows before refusing (DESIGN §4)."""

USER_AGENT = "Bollard"

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``async (host, port) -> [address text, ...]``; the default is :func:`system_resolver`."""

_WHERE = "allowedHosts in config.json"
_PRIVATE_SETTING = "BOLLARD_ALLOW_PRIVATE_EGRESS"
# An entry: optional scheme, the authority, at most a bare trailing slash.
_ENTRY_RE = re.compile(r"(?:([A-Za-z][A-Za-z0-9+.\-]*)://)?([^/?#]*)(/?)", re.DOTALL)


# httpx logs every request URL at INFO and httpcore every header at DEBUG; connector URLs
# and headers carry secrets (``?api_key=…``, ``Authorization``), so neither may log
# below WARNING, whatever level the operator sets for the root logger (DESIGN §7).
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)

# --------------------------------------------------------------------------- entries


@dataclass(frozen=True, slots=True)
class _Rule:
    """One parsed ``allowedHosts`` entry."""

    entry: str
    scheme: str
    host: str
    port: int
    wildcard: bool  # "*.example.com": subdomains only
    exact: bool  # IP literal or single-label name: that host only

    def matches(self, target: Target) -> bool:
        if target.scheme != self.scheme or target.port != self.port:
            return False
        return self.covers_host(target.host)

    def covers_host(self, host: str) -> bool:
        if host == self.host:
            return not self.wildcard
        return not self.exact and host.endswith("." + self.host)


def _parse_entry(entry: str) -> _Rule:
    """Parse one ``allowedHosts`` entry; ``ValueError`` with the reason when invalid."""
    if not isinstance(entry, str):
        raise ValueError("an allowedHosts entry must be a string")
    if entry != entry.strip():
        raise ValueError(f"{entry!r} has leading or trailing whitespace")
    match = _ENTRY_RE.fullmatch(entry)
    if match is None:
        raise ValueError(
            f"{entry!r} is not a host; write it like api.example.com, *.example.com "
            "or http://localhost:8080 (no path, query or fragment)"
        )
    scheme = (match.group(1) or "https").lower()
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"{entry!r} has scheme {scheme!r}; only https and http are supported")
    authority = match.group(2)
    check_authority(authority, repr(entry))
    host_text, port = split_authority(authority, repr(entry))
    wildcard = host_text.startswith("*.")
    if wildcard:
        host_text = host_text[2:]
    if "*" in host_text:
        raise ValueError(f"{entry!r}: '*' is only allowed as a leading '*.' label")
    host, ip = normalise_host(host_text)
    if wildcard and (ip is not None or "." not in host):
        raise ValueError(f"{entry!r} is too broad; a wildcard needs a domain like *.example.com")
    return _Rule(
        entry=entry,
        scheme=scheme,
        host=host,
        port=DEFAULT_PORTS[scheme] if port is None else port,
        wildcard=wildcard,
        exact=ip is not None or "." not in host,
    )


def validate_allowed_host_entry(entry: str) -> str | None:
    """Check one ``allowedHosts`` entry for the manifest loader.

    Returns ``None`` when valid, else a message saying what is wrong and the accepted
    forms (``api.example.com``, ``*.example.com``, ``http://localhost:8080``,
    ``https://api.example.com:8443``, ``[::1]``). DESIGN §2 (Bollard extensions), §4.
    """
    try:
        _parse_entry(entry)
    except ValueError as exc:
        return str(exc)
    return None


def _suggest_entry(target: Target) -> str:
    """The ``allowedHosts`` entry that would allow ``target``."""
    if target.scheme == "https" and target.port == 443:
        return target.netloc
    return f"{target.scheme}://{target.netloc}"


# --------------------------------------------------------------------------- policy


async def getaddrinfo_resolver(host: str, port: int) -> list[str]:
    """Resolve ``host`` with the event loop's ``getaddrinfo`` (TCP); address texts, in order.

    Raises ``OSError`` (``socket.gaierror``) when the name does not resolve.
    """
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return [str(info[4][0]) for info in infos]


class CachingResolver:
    """A :data:`Resolver` remembering successful answers for ``ttl_s`` seconds.

    ``getaddrinfo`` runs in a thread (hundreds of µs even for ``/etc/hosts`` names) and
    may wait on DNS; connections are pooled, so without a cache the lookup would be
    most of a request's overhead. Caching cannot open a rebinding window: the policy
    checks the cached addresses and the connection goes to exactly those. Failures are
    not cached. ``clock`` (seconds, monotonic) is injectable for tests; at most
    ``max_entries`` names are kept (the oldest is evicted first).
    """

    def __init__(
        self,
        inner: Resolver = getaddrinfo_resolver,
        *,
        ttl_s: float = 10.0,
        max_entries: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._inner = inner
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._entries: dict[str, tuple[float, tuple[str, ...]]] = {}

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        now = self._clock()
        cached = self._entries.get(host)
        if cached is not None and cached[0] > now:
            return cached[1]
        answer = tuple(await self._inner(host, port))
        self._entries.pop(host, None)
        if len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[host] = (now + self._ttl_s, answer)
        return answer


system_resolver = CachingResolver()
"""The default resolver: ``getaddrinfo`` behind a 10-second :class:`CachingResolver`."""


@dataclass(frozen=True, slots=True)
class Destination:
    """A request target that passed the policy, with the checked addresses to dial."""

    target: Target
    addresses: tuple[IPAddress, ...]


class EgressPolicy:
    """The egress rules of one integration (DESIGN §4; see the module docstring).

    ``allowed_hosts`` is the manifest's ``allowedHosts`` (``None`` or empty: no network);
    ``allow_private`` is the operator's ``BOLLARD_ALLOW_PRIVATE_EGRESS``; ``resolver``
    replaces DNS (tests). Raises ``ValueError`` naming the entry if one is invalid
    (see :func:`validate_allowed_host_entry`). Refusals raise
    ``HttpRequestRefused("host_not_allowed", message)``; DNS failures
    ``HttpRequestRefused("network_error", message)``. Immutable and cheap to share.
    """

    __slots__ = ("allowed_hosts", "allow_private", "_rules", "_resolver", "_decisions")

    def __init__(
        self,
        allowed_hosts: Iterable[str] | None,
        *,
        allow_private: bool = False,
        resolver: Resolver | None = None,
    ) -> None:
        if isinstance(allowed_hosts, str):
            raise TypeError("allowed_hosts is a list of entries, not one string")
        self.allowed_hosts: tuple[str, ...] = tuple(allowed_hosts or ())
        self.allow_private = allow_private
        rules = []
        for index, entry in enumerate(self.allowed_hosts):
            try:
                rules.append(_parse_entry(entry))
            except ValueError as exc:
                raise ValueError(f"allowedHosts[{index}]: {exc}") from None
        self._rules: tuple[_Rule, ...] = tuple(rules)
        self._resolver: Resolver = resolver or system_resolver
        # (scheme, host, port) -> "private addresses allowed"; a policy has few hosts.
        self._decisions: dict[tuple[str, str, int], bool] = {}

    @property
    def network_enabled(self) -> bool:
        """``False`` when ``allowedHosts`` is missing or empty."""
        return bool(self._rules)

    def check_url(self, url: str) -> Target:
        """Parse ``url`` and check its scheme, host and port against the entries.

        Returns the :class:`Target` to connect to. Raises ``HttpRequestRefused`` with
        code ``host_not_allowed`` and a message naming the host and the fix.
        """
        try:
            target = parse_url(url)
        except ValueError as exc:
            raise HttpRequestRefused("host_not_allowed", f"Refused URL: {exc}.") from None
        self._private_ok(target)
        return target

    async def authorize(self, url: str) -> Destination:
        """:meth:`check_url` then :meth:`resolve`: the full decision for one URL."""
        target = self.check_url(url)
        return Destination(target, await self.resolve(target))

    async def resolve(self, target: Target) -> tuple[IPAddress, ...]:
        """Resolve ``target.host`` (IP literals as themselves) and check every address.

        Returns the addresses in resolver order, all allowed. Raises
        ``HttpRequestRefused``: ``host_not_allowed`` if the host is not allowed or any
        address is not (a name resolving to both public and private addresses is
        refused whole), ``network_error`` if the name does not resolve.
        """
        private_ok = self._private_ok(target)
        if target.ip is not None:
            addresses: tuple[IPAddress, ...] = (target.ip,)
        else:
            try:
                texts = await self._resolver(target.host, target.port)
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise HttpRequestRefused(
                    "network_error", f"Could not resolve {target.host}: {reason}."
                ) from None
            try:
                addresses = tuple(dict.fromkeys(ip_address(text) for text in texts))
            except ValueError:
                raise HttpRequestRefused(
                    "network_error", f"Resolving {target.host} gave an invalid address."
                ) from None
            if not addresses:
                raise HttpRequestRefused("network_error", f"Could not resolve {target.host}: no addresses.")
        for address in addresses:
            kind, label = classify_address(address)
            if kind == "public" or (kind == "private" and private_ok):
                continue
            raise HttpRequestRefused("host_not_allowed", self._address_message(target, address, kind, label))
        return addresses

    def _private_ok(self, target: Target) -> bool:
        """Whether ``target`` is allowed and, if so, may reach private addresses."""
        key = (target.scheme, target.host, target.port)
        decision = self._decisions.get(key)
        if decision is None:
            matching = [rule for rule in self._rules if rule.matches(target)]
            if not matching:
                raise HttpRequestRefused("host_not_allowed", self._host_message(target))
            decision = self.allow_private and any(
                rule.host == target.host and not rule.wildcard for rule in matching
            )
            if len(self._decisions) < 1024:
                self._decisions[key] = decision
        return decision

    def _host_message(self, target: Target) -> str:
        fix = f'Add "{_suggest_entry(target)}" to {_WHERE} if the connector should reach it.'
        if not self._rules:
            return (
                f"{target.origin} is not allowed: this integration has no allowedHosts, "
                f"so its connector has no network access. {fix}"
            )
        same_host = [rule.entry for rule in self._rules if rule.covers_host(target.host)]
        if same_host:
            return (
                f"{target.origin} is not allowed: allowedHosts has {', '.join(same_host)}, "
                f"which allows other schemes or ports only (https on port 443 unless an "
                f"entry names them). {fix}"
            )
        listed = ", ".join(rule.entry for rule in self._rules[:10])
        more = ", …" if len(self._rules) > 10 else ""
        return f"{target.host} is not in allowedHosts ({listed}{more}). {fix}"

    def _address_message(self, target: Target, address: IPAddress, kind: str, label: str) -> str:
        where = target.host if target.ip is not None else f"{target.host} resolves to {address}"
        if kind == "forbidden":
            return f"{where}, which is never a valid destination ({label})."
        head = f"{where}, which is a private or local address ({label})"
        if not self.allow_private:
            return (
                f"{head}; connectors may not reach such addresses. To allow it, "
                f"the operator sets {_PRIVATE_SETTING}=true and {_WHERE} names "
                f'"{_suggest_entry(target)}" exactly.'
            )
        return (
            f"{head}; private addresses are reachable only through an entry naming the "
            f'host exactly, not a domain or wildcard entry: add "{_suggest_entry(target)}" '
            f"to {_WHERE}."
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
