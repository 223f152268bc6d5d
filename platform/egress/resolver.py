"""Name resolution for the egress policy: ``getaddrinfo`` behind a short cache (DESIGN §4).

The policy checks every address a name resolves to and the connection goes to exactly
those addresses (:mod:`.pinned`), so whatever a resolver answers is checked before use;
caching therefore cannot open a DNS-rebinding window.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable, Sequence

__all__ = ["CachingResolver", "Resolver", "getaddrinfo_resolver", "system_resolver"]

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``async (host, port) -> [address text, ...]``; the default is :data:`system_resolver`."""


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
