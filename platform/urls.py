"""Strict parsing of connector URLs for the egress policy (DESIGN §4).

One parse, made here, decides which host a request goes to, and the request is built
from that same parse (research/restrictedpython.md §4.5 and its "URL-parser
differentials": ``https://evil.example\\@allowed.example/`` and
``https://allowed.example%2eevil.example/`` mean different hosts to different parsers,
so such authorities are refused rather than interpreted).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv6Address
from typing import Any
from urllib.parse import quote

import httpx
import idna
from bollard.platform.addresses import IPAddress

DEFAULT_PORTS = {"http": 80, "https": 443}

# scheme "://" authority, then path and query up to an optional fragment (RFC 3986 §3).
_URL_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://([^/?#]*)([^#]*)(?:#.*)?", re.DOTALL)
_PORT_RE = re.compile(r"[0-9]{1,5}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_LABEL_RE = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# WHATWG URL "ends in a number": such hosts are IPv4 in some parser's eyes.
_NUMERIC_LABEL_RE = re.compile(r"[0-9]+|0x[0-9a-f]*")
# RFC 3986 reserved and unreserved characters plus "%": kept as they are when quoting.
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"


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


def check_authority(authority: str, what: str) -> None:
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


def split_authority(authority: str, what: str) -> tuple[str, int | None]:
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
    if _CONTROL_RE.search(url):
        raise ValueError("the URL contains a control character")
    match = _URL_RE.fullmatch(url)
    if match is None:
        raise ValueError("the URL must be absolute, like https://api.example.com/path")
    scheme, authority, rest = match.group(1).lower(), match.group(2), match.group(3)
    if scheme not in DEFAULT_PORTS:
        raise ValueError(f"the URL scheme {scheme!r} is not supported (use https)")
    check_authority(authority, "the URL")
    host_text, port = split_authority(authority, "the URL")
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
