"""The operator's resolve override for egress: ``BOLLARD_EGRESS_RESOLVE`` (DESIGN §4).

Like curl's ``--resolve``: ``"api.tavily.com:443=127.0.0.1:8443,api.github.com:443=127.0.0.1:8444"``
sends requests for a name and port to another address and port, so connectors whose
base URL is a constant can run unchanged against local stand-ins (tests, staging).
Only the address and port dialled change: the policy still checks the *name* against
``allowedHosts``, the ``Host`` header and TLS (SNI, certificate check) are still for the
name, and the address is still classified (:mod:`.addresses`) — a loopback address is
allowed for an overridden name only, other private addresses follow the usual rule,
forbidden ones never pass. It is an operator setting; nothing in a manifest can set it,
and ``/healthz`` reports it while active.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import ip_address

from .addresses import IPAddress
from .hosts import normalise_host

__all__ = ["ResolveOverride"]


def _port(text: str, where: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"{where}: {text!r} is not a port (1-65535)")
    return int(text)


def _split(text: str, where: str) -> tuple[str, str]:
    host, sep, port = text.rpartition(":")
    if not sep or not host:
        raise ValueError(f"{where}: {text!r} must be host:port")
    return host, port


@dataclass(frozen=True)
class ResolveOverride:
    """Parsed ``BOLLARD_EGRESS_RESOLVE``: ``(host, port) -> (address, port)``.

    Hosts are normalised like URL hosts (lower-case, IDNA, no trailing dot); targets
    must be IP literals (``127.0.0.1:8443``, ``[::1]:8443``), never names.
    """

    entries: dict[tuple[str, int], tuple[IPAddress, int]] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> ResolveOverride:
        """Parse the setting (comma-separated ``host:port=address:port``; empty: none).
        Raises ``ValueError`` naming the entry and what is wrong with it."""
        entries: dict[tuple[str, int], tuple[IPAddress, int]] = {}
        for index, raw in enumerate(part.strip() for part in (text or "").split(",")):
            if not raw:
                continue
            where = f"BOLLARD_EGRESS_RESOLVE entry {index + 1} ({raw[:80]!r})"
            source, sep, destination = raw.partition("=")
            if not sep:
                raise ValueError(f"{where}: write host:port=address:port, like curl --resolve")
            host_text, port_text = _split(source.strip(), where)
            address_text, target_port = _split(destination.strip(), where)
            host, ip = normalise_host(host_text)
            if ip is not None:
                raise ValueError(f"{where}: the left side must be a host name, not an address")
            try:
                address = ip_address(address_text.strip("[]"))
            except ValueError:
                raise ValueError(f"{where}: {address_text!r} is not an IP address") from None
            entries[(host, _port(port_text, where))] = (address, _port(target_port, where))
        return cls(entries)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def lookup(self, host: str, port: int) -> tuple[IPAddress, int] | None:
        """The ``(address, port)`` to dial for a normalised ``host`` and ``port``, or ``None``."""
        return self.entries.get((host, port))

    def describe(self) -> list[str]:
        """``["api.tavily.com:443 -> 127.0.0.1:8443", …]`` (for ``/healthz``)."""
        out = []
        for (host, port), (address, to_port) in sorted(self.entries.items()):
            shown = f"[{address}]" if address.version == 6 else str(address)
            out.append(f"{host}:{port} -> {shown}:{to_port}")
        return out
