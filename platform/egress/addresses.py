"""Which IP addresses a connector may reach (DESIGN §4, "Egress policy for ctx.http").

Every address the egress policy is about to connect to is classified here:

- ``"public"``: globally routable unicast; always allowed.
- ``"private"``: loopback, RFC 1918, CGNAT (RFC 6598), link-local (including the
  cloud metadata addresses 169.254.169.254 and fd00:ec2::254), IPv6 unique-local and
  site-local, benchmarking. Allowed only when the operator allows private egress
  *and* the manifest names that host or address literally.
- ``"forbidden"``: unspecified, multicast, broadcast, documentation, reserved and
  IETF-protocol ranges. Never a legitimate destination, never allowed.

The tables are spelled out here (from the IANA IPv4 and IPv6 Special-Purpose Address
Registries, RFC 6890) rather than taken from ``ipaddress``'s ``is_private`` /
``is_global``, whose tables changed between 3.11 patch releases. IPv6 forms that embed an
IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``)
are judged by the embedded IPv4 address; the deprecated IPv4-compatible form ``::a.b.c.d``
and Teredo are forbidden outright.
"""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network
from typing import Literal

IPAddress = IPv4Address | IPv6Address
AddressClass = Literal["public", "private", "forbidden"]

# (network, class, label). The first match wins, so specific ranges come first.
_IPV4_ROWS: tuple[tuple[str, AddressClass, str], ...] = (
    ("0.0.0.0/8", "forbidden", "unspecified ('this network')"),
    ("10.0.0.0/8", "private", "private (RFC 1918)"),
    ("100.64.0.0/10", "private", "carrier-grade NAT (RFC 6598)"),
    ("127.0.0.0/8", "private", "loopback"),
    ("169.254.0.0/16", "private", "link-local (cloud metadata lives here)"),
    ("172.16.0.0/12", "private", "private (RFC 1918)"),
    ("192.0.0.0/24", "forbidden", "IETF protocol assignments"),
    ("192.0.2.0/24", "forbidden", "documentation (TEST-NET-1)"),
    ("192.88.99.0/24", "forbidden", "6to4 relay anycast (deprecated)"),
    ("192.168.0.0/16", "private", "private (RFC 1918)"),
    ("198.18.0.0/15", "private", "benchmarking (RFC 2544)"),
    ("198.51.100.0/24", "forbidden", "documentation (TEST-NET-2)"),
    ("203.0.113.0/24", "forbidden", "documentation (TEST-NET-3)"),
    ("224.0.0.0/4", "forbidden", "multicast"),
    ("240.0.0.0/4", "forbidden", "reserved or broadcast"),
)
_IPV4_TABLE = tuple((IPv4Network(net), cls, label) for net, cls, label in _IPV4_ROWS)

_IPV6_ROWS: tuple[tuple[str, AddressClass, str], ...] = (
    ("::/128", "forbidden", "unspecified"),
    ("::1/128", "private", "loopback"),
    ("64:ff9b:1::/48", "private", "local-use NAT64 (RFC 8215)"),
    ("100::/64", "forbidden", "discard-only (RFC 6666)"),
    ("2001::/32", "forbidden", "Teredo"),
    ("2001::/23", "forbidden", "IETF protocol assignments"),
    ("2001:db8::/32", "forbidden", "documentation"),
    ("3fff::/20", "forbidden", "documentation"),
    ("fc00::/7", "private", "unique local (ULA; includes fd00:ec2::254 metadata)"),
    ("fe80::/10", "private", "link-local"),
    ("fec0::/10", "private", "site-local (deprecated)"),
    ("ff00::/8", "forbidden", "multicast"),
)
_IPV6_TABLE = tuple((IPv6Network(net), cls, label) for net, cls, label in _IPV6_ROWS)

_NAT64 = IPv6Network("64:ff9b::/96")
_IPV4_COMPATIBLE = IPv6Network("::/96")
_GLOBAL_UNICAST_V6 = IPv6Network("2000::/3")


def classify_address(address: IPAddress) -> tuple[AddressClass, str]:
    """Classify one address as ``"public"``, ``"private"`` or ``"forbidden"``.

    Returns ``(class, label)`` where ``label`` is a short human description for error
    messages ("loopback", "private (RFC 1918)", …; ``"public"`` for public addresses).
    IPv6 forms embedding IPv4 are classified by the embedded address, with the label
    saying so. Pure function, no I/O. Source: IANA special-purpose registries, RFC 6890.
    """
    if isinstance(address, IPv4Address):
        for net, cls, label in _IPV4_TABLE:
            if address in net:
                return cls, label
        return "public", "public"
    embedded = embedded_ipv4(address)
    if embedded is not None:
        cls, label = classify_address(embedded)
        return cls, f"{label}, as IPv4 {embedded} inside an IPv6 address"
    for net6, cls, label in _IPV6_TABLE:
        if address in net6:
            return cls, label
    if address in _IPV4_COMPATIBLE:
        return "forbidden", "IPv4-compatible IPv6 (deprecated)"
    if address not in _GLOBAL_UNICAST_V6:
        return "forbidden", "reserved"
    return "public", "public"


def embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, or ``None``.

    Covers IPv4-mapped (``::ffff:a.b.c.d``, RFC 4291), well-known NAT64
    (``64:ff9b::/96``, RFC 6052) and 6to4 (``2002::/16``, RFC 3056): traffic to these
    reaches the IPv4 address, so it must be judged as that address.
    """
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour
