"""Strict parsing of connector URLs for the egress policy (DESIGN §4).

One parse, made here, decides which host a request goes to, and the request is built
from that same parse (research/restrictedpython.md §4.5 and its "URL-parser
differentials": ``https://evil.example\\@allowed.example/`` and
``https://allowed.example%2eevil.example/`` mean different hosts to different parsers,
so such authorities are refused rather than interpreted). The host part follows the
same rules as an ``allowedHosts`` entry (:mod:`.hosts`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from ipaddress import IPv6Address
from typing import Any
from urllib.parse import quote

import httpx

from .addresses import IPAddress
from .hosts import DEFAULT_PORTS, check_authority, normalise_host, split_authority

__all__ = ["Target", "parse_url"]

# scheme "://" authority, then path and query up to an optional fragment (RFC 3986 §3).
_URL_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*)://([^/?#]*)([^#]*)(?:#.*)?", re.DOTALL)
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
# RFC 3986 reserved and unreserved characters plus "%": kept as they are when quoting.
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"


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
