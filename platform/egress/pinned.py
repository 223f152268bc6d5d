"""Pinned connections: the egress pool dials only addresses the policy checked.

DESIGN §4 asks that the connection go to the address that was checked, with no second
DNS lookup between check and connect. httpcore has no per-request "connect here" option,
so the checked address travels in the request URL's host (:func:`pinned_host`), and the
network backend under httpcore's connection pool dials exactly that address and refuses
every other host (:class:`_PinnedBackend`, the backend of :func:`make_pool`). TLS is
still verified for the real name, which the sender passes as the ``sni_hostname``
request extension and ``Host`` header.

The backend's streams are plain asyncio streams (no anyio layer: measured by
``bench/bench_http_client.py``), and every socket read is charged to the
:class:`~.budget.WireBudget` of the request running in the current task
(:data:`~.budget.CURRENT_BUDGET`), so raw bytes on the wire, reads and bytes before
the final response head are bounded below the HTTP parser (DESIGN §4.6).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import socket
import ssl
from collections.abc import Iterable
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import httpcore

from .addresses import IPAddress
from .budget import CURRENT_BUDGET

__all__ = ["address_of_pinned_host", "make_pool", "pinned_host"]

_PINNED_RE = re.compile(r"ip([46])-([0-9a-f]+)\.[0-9a-f]{16}\.pinned\.invalid")


def pinned_host(address: IPAddress, name: str) -> str:
    """The URL host under which a request to ``name`` at ``address`` is sent.

    httpcore pools connections by (scheme, host, port); encoding both the checked address
    and the name (hashed) gives one pool entry per (address, TLS name), so a connection
    is never reused for another name or a re-resolved address. ``.invalid`` (RFC 6761)
    never resolves, so a pool without the pinned backend fails closed.
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


class _Stream(httpcore.AsyncNetworkStream):
    """One TCP (or TLS) connection as asyncio streams; reads are charged to the budget."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            async with asyncio.timeout(timeout):
                data = await self._reader.read(max_bytes)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout("read timed out") from exc
        except OSError as exc:  # ssl.SSLError is an OSError
            raise httpcore.ReadError(str(exc) or type(exc).__name__) from exc
        budget = CURRENT_BUDGET.get()
        if budget is not None:
            budget.charge(len(data))  # raises HttpRequestRefused past a limit
        return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            async with asyncio.timeout(timeout):
                self._writer.write(buffer)
                await self._writer.drain()
        except TimeoutError as exc:
            raise httpcore.WriteTimeout("write timed out") from exc
        except OSError as exc:
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        # No wait for the peer's TLS close_notify: a hostile server could withhold it.
        self._writer.transport.abort()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        except TimeoutError as exc:
            self._writer.transport.abort()
            raise httpcore.ConnectTimeout("TLS handshake timed out") from exc
        except OSError as exc:
            self._writer.transport.abort()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # httpcore asks of an idle pooled connection: closed by the peer, or broken?
            return self._reader.at_eof() or self._writer.transport.is_closing()
        names = {"ssl_object": "ssl_object", "client_addr": "sockname", "server_addr": "peername"}
        if info in names:
            return self._writer.get_extra_info(names[info])
        if info == "socket":
            return self._writer.get_extra_info("socket")
        return None


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Dials only addresses encoded by :func:`pinned_host`; never resolves a name."""

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
        try:
            async with asyncio.timeout(timeout):
                # A numeric host: asyncio's getaddrinfo returns it without a DNS query.
                reader, writer = await asyncio.open_connection(
                    address.compressed, port, flags=socket.AI_NUMERICHOST
                )
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"connecting to port {port} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        sock = writer.get_extra_info("socket")
        for option in socket_options or ():
            sock.setsockopt(*option)
        return _Stream(reader, writer)

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("egress never uses unix sockets")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def make_pool(
    ssl_context: ssl.SSLContext,
    *,
    max_connections: int,
    max_keepalive_connections: int,
    keepalive_expiry_s: float,
) -> httpcore.AsyncConnectionPool:
    """httpcore's connection pool on :class:`_PinnedBackend`, HTTP/1.1 only.

    ``ssl_context`` verifies servers (for the ``sni_hostname`` the sender passes).
    """
    return httpcore.AsyncConnectionPool(
        ssl_context=ssl_context,
        max_connections=max_connections,
        max_keepalive_connections=max_keepalive_connections,
        keepalive_expiry=keepalive_expiry_s,
        http1=True,
        http2=False,
        network_backend=_PinnedBackend(),
    )
