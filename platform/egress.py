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
- The URL is parsed once, strictly, by :func:`parse_url` (no user-info, no backslash,
  ``%``, whitespace or control characters in the authority, no non-canonical numeric
  hosts such as ``0x7f000001``), and that parse is what the request is built from.
- Every address the name resolves to is checked (:mod:`bollard.platform.addresses`);
  loopback/private/link-local addresses pass only when the operator allows private
  egress *and* an entry names that host or address literally (not through a subdomain
  rule or a wildcard). The connection then goes to a checked address: the shared client
  from :func:`make_client` can only dial addresses encoded into the request URL by this
  module, so there is no second DNS lookup to rebind.
- Redirects are followed here, at most :data:`MAX_REDIRECTS` hops, each checked like a
  new request; ``Authorization``, ``Cookie`` and ``Proxy-Authorization`` are dropped when
  the origin changes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from http.cookiejar import CookieJar, DefaultCookiePolicy
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any
from urllib.parse import quote, urljoin

import httpcore
import httpx
import idna
from bollard.platform.addresses import IPAddress, classify_address
from bollard.sandbox.protocol import (
    HTTP_METHODS,
    HttpRequest,
    HttpRequestRefused,
    HttpResponse,
)

MAX_REDIRECTS = 5
"""Redirect hops :func:`send` follows before refusing (DESIGN §4)."""

DEFAULT_PORTS = {"http": 80, "https": 443}
USER_AGENT = "Bollard"

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``async (host, port) -> [address text, ...]``; the default is :func:`system_resolver`."""

_WHERE = "allowedHosts in config.json"
_PRIVATE_SETTING = "BOLLARD_ALLOW_PRIVATE_EGRESS"

# scheme "://" authority, then path and query up to an optional fragment (RFC 3986 §3).
_URL_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://([^/?#]*)([^#]*)(?:#.*)?", re.DOTALL)
_ENTRY_RE = re.compile(r"(?:([A-Za-z][A-Za-z0-9+.\-]*)://)?([^/?#]*)(/?)", re.DOTALL)
_PORT_RE = re.compile(r"[0-9]{1,5}")
_LABEL_RE = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# WHATWG URL "ends in a number": such hosts are IPv4 in some parser's eyes.
_NUMERIC_LABEL_RE = re.compile(r"[0-9]+|0x[0-9a-f]*")
# RFC 3986 reserved and unreserved characters plus "%": kept as they are when quoting.
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"


# --------------------------------------------------------------------------- hosts


def normalise_host(raw: str) -> tuple[str, IPAddress | None]:
    """Normalise the host part of a URL or an ``allowedHosts`` entry.

    Returns ``(host, ip)``: ``host`` is lower-case ASCII (IDNA A-labels via the ``idna``
    package, UTS #46 mapping) with one trailing dot removed, or the canonical text of an
    IP address (``"::1"`` for ``"[0:0::1]"``), in which case ``ip`` is that address.
    Raises ``ValueError`` with a readable reason for empty hosts, bad labels, invalid
    IDNA, IPv6 without brackets, and numeric hosts that are not dotted-decimal IPv4
    (``0x7f000001``, ``2130706433``, ``127.1``, ``0177.0.0.1``: ``getaddrinfo`` would
    read them as addresses, so they are refused outright).
    """
    if raw.startswith("[") and raw.endswith("]"):
        try:
            ip6 = IPv6Address(raw[1:-1])
        except ValueError:
            raise ValueError(f"{raw!r} is not a valid IPv6 address") from None
        return ip6.compressed, ip6
    host = raw[:-1] if raw.endswith(".") else raw
    if not host:
        raise ValueError("the host is empty")
    if ":" in host or "[" in host or "]" in host:
        raise ValueError(f"{raw!r} is not a valid host (write IPv6 addresses as [::1])")
    if host.isascii():
        host = host.lower()
    else:
        try:
            host = idna.encode(host, uts46=True).decode("ascii")
        except idna.IDNAError as exc:
            raise ValueError(f"{raw!r} is not a valid international host name ({exc})") from None
    last = host.rsplit(".", 1)[-1]
    if _NUMERIC_LABEL_RE.fullmatch(last):
        try:
            ip4 = IPv4Address(host)
        except ValueError:
            raise ValueError(
                f"{raw!r} is not a dotted-decimal IPv4 address; write addresses like 192.0.2.1"
            ) from None
        return ip4.compressed, ip4
    if len(host) > 253:
        raise ValueError(f"{raw!r} is longer than 253 characters")
    for label in host.split("."):
        if not _LABEL_RE.fullmatch(label):
            raise ValueError(f"{raw!r} is not a valid host name (label {label!r})")
        if label.startswith("xn--"):
            try:
                idna.decode(label)
            except idna.IDNAError:
                raise ValueError(f"{raw!r} has an invalid punycode label {label!r}") from None
    return host, None


def _check_authority(authority: str, what: str) -> None:
    """Refuse the characters that make parsers disagree about an authority."""
    if "@" in authority:
        raise ValueError(
            f"{what} contains user-info (user@host), which is not allowed; "
            "send credentials in a header instead"
        )
    for ch in authority:
        if ch == "\\":
            raise ValueError(f"{what} contains a backslash in the host part")
        if ch == "%":
            raise ValueError(f"{what} contains '%' in the host part (percent-encoded host)")
        if ch.isspace() or not ch.isprintable():
            raise ValueError(f"{what} contains whitespace or a control character in the host part")


def _split_authority(authority: str, what: str) -> tuple[str, int | None]:
    """Split ``host[:port]`` / ``[v6][:port]``; the port is ``None`` when absent."""
    if authority.startswith("["):
        end = authority.find("]")
        if end < 0:
            raise ValueError(f"{what} has an unterminated IPv6 address")
        host, rest = authority[: end + 1], authority[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"{what} has text after the IPv6 address")
        port_text = rest[1:] if rest else None
    else:
        if authority.count(":") > 1:
            raise ValueError(f"{what} has a bare IPv6 address; write it in brackets like [::1]")
        host, sep, port_text_ = authority.partition(":")
        port_text = port_text_ if sep else None
    if port_text is None:
        return host, None
    if not _PORT_RE.fullmatch(port_text) or not 0 < int(port_text) < 65536:
        raise ValueError(f"{what} has an invalid port {port_text!r}")
    return host, int(port_text)


# --------------------------------------------------------------------------- URLs


@dataclass(frozen=True, slots=True)
class Target:
    """One parsed request URL: the single parse that is both checked and connected to.

    ``scheme`` is ``"http"`` or ``"https"``; ``host`` as from :func:`normalise_host`
    (``ip`` set for IP literals); ``port`` always explicit; ``path`` percent-encoded,
    starting with ``/``; ``query`` percent-encoded without ``?``, or ``None``.
    """

    scheme: str
    host: str
    port: int
    ip: IPAddress | None
    path: str
    query: str | None

    @property
    def netloc(self) -> str:
        """``host[:port]`` as sent in the ``Host`` header (port only when not default)."""
        host = f"[{self.host}]" if isinstance(self.ip, IPv6Address) else self.host
        return host if DEFAULT_PORTS[self.scheme] == self.port else f"{host}:{self.port}"

    @property
    def origin(self) -> str:
        """``scheme://host[:port]``; used in messages (a full URL may carry secrets)."""
        return f"{self.scheme}://{self.netloc}"

    @property
    def url(self) -> str:
        """The URL as requested, after normalisation (no fragment)."""
        query = "" if self.query is None else "?" + self.query
        return f"{self.origin}{self.path}{query}"

    def with_params(self, params: Mapping[str, Any]) -> Target:
        """Append ``params`` to the query (``a=1`` plus ``{"a": 2}`` gives ``a=1&a=2``).

        Values are encoded like httpx does (``True`` → ``true``, lists repeat the key).
        Raises ``TypeError`` for values httpx cannot encode.
        """
        extra = str(httpx.QueryParams(dict(params)))
        if not extra:
            return self
        query = extra if not self.query else f"{self.query}&{extra}"
        return replace(self, query=query)


def parse_url(url: str) -> Target:
    """Parse an absolute ``http``/``https`` URL strictly (research §4.5).

    Raises ``ValueError`` with a readable reason for: anything that is not
    ``scheme://authority...``, other schemes, user-info, backslash, ``%``, whitespace or
    control characters in the authority, control characters anywhere, bad ports, and
    the host errors of :func:`normalise_host`. The fragment is dropped; path and query
    are percent-encoded where needed (existing escapes are kept, never decoded).
    """
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise ValueError("the URL contains a control character")
    match = _URL_RE.fullmatch(url)
    if match is None:
        raise ValueError("the URL must be absolute, like https://api.example.com/path")
    scheme, authority, rest = match.group(1).lower(), match.group(2), match.group(3)
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"the URL scheme {scheme!r} is not supported (use https)")
    _check_authority(authority, "the URL")
    host_text, port = _split_authority(authority, "the URL")
    host, ip = normalise_host(host_text)
    path, sep, query = rest.partition("?")
    return Target(
        scheme=scheme,
        host=host,
        port=DEFAULT_PORTS[scheme] if port is None else port,
        ip=ip,
        path=quote(path, safe=_URL_SAFE) or "/",
        query=quote(query, safe=_URL_SAFE) if sep else None,
    )


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
    _check_authority(authority, repr(entry))
    host_text, port = _split_authority(authority, repr(entry))
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
                raise HttpRequestRefused(
                    "network_error", f"Could not resolve {target.host}: no addresses."
                )
        for address in addresses:
            kind, label = classify_address(address)
            if kind == "public" or (kind == "private" and private_ok):
                continue
            raise HttpRequestRefused(
                "host_not_allowed", self._address_message(target, address, kind, label)
            )
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


# --------------------------------------------------------------------------- client

_PINNED_RE = re.compile(r"ip([46])-([0-9a-f]+)\.[0-9a-f]{16}\.pinned\.invalid")


def _pinned_host(address: IPAddress, name: str) -> str:
    """The URL host under which a request to ``name`` at ``address`` is sent.

    httpcore pools connections by (scheme, host, port); encoding both the checked address
    and the name (hashed) gives one pool entry per (address, TLS name), so a connection
    is never reused for another name or a re-resolved address. ``.invalid`` (RFC 6761)
    never resolves, so a client without the pinned backend fails closed.
    """
    digest = hashlib.blake2s(name.encode("ascii"), digest_size=8).hexdigest()
    return f"ip{address.version}-{address.packed.hex()}.{digest}.pinned.invalid"


def _address_of_pinned_host(host: str) -> IPAddress | None:
    match = _PINNED_RE.fullmatch(host)
    if match is None:
        return None
    packed = bytes.fromhex(match.group(2))
    if match.group(1) == "4" and len(packed) == 4:
        return IPv4Address(packed)
    if match.group(1) == "6" and len(packed) == 16:
        return IPv6Address(packed)
    return None


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Dials only addresses encoded by :func:`_pinned_host`; never resolves a name."""

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        address = _address_of_pinned_host(host)
        if address is None:
            raise httpcore.ConnectError("refusing to dial a host the egress policy did not pin")
        return await self._inner.connect_tcp(
            address.compressed, port, timeout, local_address, socket_options
        )

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("egress never uses unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with a connection pool on :class:`_PinnedBackend`."""

    def __init__(self, ssl_context: ssl.SSLContext, limits: httpx.Limits) -> None:
        super().__init__(verify=ssl_context, trust_env=False, limits=limits)
        # httpx exposes no network-backend option; replace the pool it built.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=_PinnedBackend(),
        )


class EgressClient(httpx.AsyncClient):
    """The shared client :func:`send` requires; made by :func:`make_client`."""


def make_client(
    *,
    ssl_context: ssl.SSLContext | None = None,
    max_connections: int = 100,
    max_keepalive_connections: int = 20,
    keepalive_expiry_s: float = 30.0,
) -> httpx.AsyncClient:
    """Create the host's one shared client for connector egress (DESIGN §4.3).

    ``trust_env=False`` (no proxy variables, no ``SSL_CERT_FILE``), no automatic
    redirects, a cookie jar that stores nothing (cookies must not leak between
    integrations), and a transport that dials only policy-checked addresses.
    ``ssl_context`` defaults to certifi's CA bundle with hostname checking; tests pass
    one trusting their own CA. Close it with ``await client.aclose()`` at shutdown.
    """
    context = ssl_context or httpx.create_ssl_context(trust_env=False)
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_keepalive_connections,
        keepalive_expiry=keepalive_expiry_s,
    )
    return EgressClient(
        transport=_PinnedTransport(context, limits),
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
        host=_pinned_host(address, target.host),
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
            return (
                f"The TLS certificate of {target.origin} was not accepted: "
                f"{cause.verify_message}."
            )
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
