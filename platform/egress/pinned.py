"""Pinned connections: the egress client dials only addresses the policy checked.

DESIGN §4 asks that the connection go to the address that was checked, with no second
DNS lookup between check and connect. httpx has no per-request "connect here" option,
so the checked address travels in the request URL's host (:func:`pinned_host`), and a
network backend under httpx's connection pool dials exactly that address and refuses
every other host (:class:`_PinnedBackend`, the pool of :class:`PinnedTransport`). TLS is
still verified for the real name, which the sender passes as the ``sni_hostname``
request extension and ``Host`` header.
"""

from __future__ import annotations

import hashlib
import re
import ssl
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import httpcore
import httpx

from .addresses import IPAddress

__all__ = ["PinnedTransport", "address_of_pinned_host", "pinned_host"]

_PINNED_RE = re.compile(r"ip([46])-([0-9a-f]+)\.[0-9a-f]{16}\.pinned\.invalid")


def pinned_host(address: IPAddress, name: str) -> str:
    """The URL host under which a request to ``name`` at ``address`` is sent.

    httpcore pools connections by (scheme, host, port); encoding both the checked address
    and the name (hashed) gives one pool entry per (address, TLS name), so a connection
    is never reused for another name or a re-resolved address. ``.invalid`` (RFC 6761)
    never resolves, so a client without the pinned backend fails closed.
    """
    digest = hashlib.blake2s(name.encode("ascii"), digest_size=8).hexdigest()
    return f"ip{address.version}-{address.packed.hex()}.{digest}.pinned.invalid"


def address_of_pinned_host(host: str) -> IPAddress | None:
    """The address :func:`pinned_host` encoded into ``host``, or ``None`` for any other host."""
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
    """Dials only addresses encoded by :func:`pinned_host`; never resolves a name."""

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
        address = address_of_pinned_host(host)
        if address is None:
            raise httpcore.ConnectError("refusing to dial a host the egress policy did not pin")
        return await self._inner.connect_tcp(address.compressed, port, timeout, local_address, socket_options)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("egress never uses unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with a connection pool on :class:`_PinnedBackend`.

    ``ssl_context`` verifies servers (for the ``sni_hostname`` the sender passes);
    ``limits`` sizes the pool. HTTP/1.1 only.
    """

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
