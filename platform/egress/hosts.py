"""The ``allowedHosts`` grammar: parsing and matching host entries (DESIGN §2, §4).

An entry names one host, a domain or a wildcard, optionally with a scheme and port:

- ``example.com`` allows that host and its subdomains; ``*.example.com`` allows
  subdomains only; a single-label name (``localhost``) or an IP address allows exactly
  that host. Hosts compare lower-cased and IDNA-normalised, one trailing dot ignored.
- https on port 443 only, unless the entry names a scheme or port
  (``http://localhost:8080``, ``https://api.example.com:8443``); both must then match.

The host-part rules (:func:`normalise_host`, :func:`check_authority`,
:func:`split_authority`) are shared with the URL parser (:mod:`.urls`), so an entry and
a request URL are read the same way. This module imports no HTTP client: the manifest
loader validates entries with it (:func:`validate_allowed_host_entry`) without paying
for httpx at start-up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from typing import TYPE_CHECKING

import idna

from .addresses import IPAddress

if TYPE_CHECKING:
    from .urls import Target

__all__ = [
    "DEFAULT_PORTS",
    "HostRule",
    "check_authority",
    "normalise_host",
    "parse_entry",
    "split_authority",
    "suggest_entry",
    "validate_allowed_host_entry",
]

DEFAULT_PORTS = {"http": 80, "https": 443}
"""The schemes egress supports and the port each implies when none is given."""

# An entry: optional scheme, the authority, at most a bare trailing slash.
_ENTRY_RE = re.compile(r"(?:([A-Za-z][A-Za-z0-9+.\-]*)://)?([^/?#]*)(/?)", re.DOTALL)
_PORT_RE = re.compile(r"[0-9]{1,5}")
_LABEL_RE = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
# WHATWG URL "ends in a number": such hosts are IPv4 in some parser's eyes.
_NUMERIC_LABEL_RE = re.compile(r"[0-9]+|0x[0-9a-f]*")

# --------------------------------------------------------------------------- host part


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
    """Refuse the characters that make parsers disagree about an authority.

    ``what`` names the text in the message (``"the URL"``, an entry's repr). Raises
    ``ValueError`` for user-info, backslash, ``%``, whitespace or control characters.
    Source: research/restrictedpython.md §4.5 ("URL-parser differentials").
    """
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
    """Split ``host[:port]`` / ``[v6][:port]``; the port is ``None`` when absent.

    Raises ``ValueError`` (naming ``what``) for unbracketed IPv6, an unterminated
    bracket, text after ``]`` and ports outside 1–65535.
    """
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


# --------------------------------------------------------------------------- entries


@dataclass(frozen=True, slots=True)
class HostRule:
    """One parsed ``allowedHosts`` entry (:func:`parse_entry`).

    ``entry`` is the text as written; ``scheme``/``port`` what it allows (``https``/443
    unless named); ``host`` normalised; ``wildcard`` for ``*.example.com`` (subdomains
    only); ``exact`` for an IP literal or single-label name (that host only).
    """

    entry: str
    scheme: str
    host: str
    port: int
    wildcard: bool
    exact: bool

    def matches(self, target: Target) -> bool:
        """Whether a request to ``target`` is allowed by this entry (scheme, port, host)."""
        if target.scheme != self.scheme or target.port != self.port:
            return False
        return self.covers_host(target.host)

    def covers_host(self, host: str) -> bool:
        """Whether this entry covers ``host`` (normalised), whatever the scheme and port."""
        if host == self.host:
            return not self.wildcard
        return not self.exact and host.endswith("." + self.host)


def parse_entry(entry: str) -> HostRule:
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
    return HostRule(
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
        parse_entry(entry)
    except ValueError as exc:
        return str(exc)
    return None


def suggest_entry(target: Target) -> str:
    """The ``allowedHosts`` entry that would allow ``target`` (for error messages)."""
    if target.scheme == "https" and target.port == 443:
        return target.netloc
    return f"{target.scheme}://{target.netloc}"
