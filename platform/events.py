"""Events other parts of the host (and, with PostgreSQL, other replicas) react to.

One :class:`EventBus` per :class:`~bollard.platform.runtime.Runtime`. Topics and payloads
(JSON objects, camelCase keys like the API):

- ``registry``: ``{"slug": str, "contentHash": str | None}`` after a folder was loaded,
  changed, broke (``contentHash`` of the version still serving) or was removed (``None``);
- ``approval``: ``{"id": str}`` after an approval changed status (re-read it for the new one);
- ``credential``: ``{"slug": str, "credentialId": str}`` after credentials were set,
  deleted or re-encrypted (``bollard rotate-key``, one event per row);
- ``token``: ``{"tokenId": str}`` after a token was created or revoked.

:class:`EventBus` delivers in this process. A PostgreSQL-backed subclass (DESIGN §12)
also sends each event to the other replicas and delivers theirs here, through the same
:meth:`EventBus.deliver`; callers see one interface either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("bollard.events")

TOPICS = ("registry", "approval", "credential", "token")
#: events a slow subscriber may fall behind by before it is told to resync
QUEUE_SIZE = 256


@dataclass(frozen=True)
class Event:
    """One event: ``topic`` (one of :data:`TOPICS`, or ``resync``), its payload, and
    whether it came from another replica."""

    topic: str
    payload: dict[str, Any]
    remote: bool = False


RESYNC = Event("resync", {})  # the subscriber missed events: re-read what it shows


@dataclass
class _Subscriber:
    topics: frozenset[str]
    queue: asyncio.Queue[Event] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))


Handler = Callable[[Event], None]


class EventBus:
    """Publish/subscribe on :data:`TOPICS`, in process.

    ``publish`` never blocks and never raises: a handler's exception is logged, and a
    subscriber whose queue is full gets :data:`RESYNC` instead of the events it missed.
    """

    def __init__(self) -> None:
        self._subscribers: list[_Subscriber] = []
        self._handlers: list[tuple[frozenset[str], Handler]] = []

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        """Deliver ``payload`` on ``topic`` here (and, in subclasses, to other replicas)."""
        self.deliver(Event(topic, payload))

    def deliver(self, event: Event, *, subscribers: bool = True) -> None:
        """Hand ``event`` to this process's handlers and (unless ``subscribers=False``)
        subscribers."""
        for topics, handler in list(self._handlers):
            if event.topic in topics or event.topic == "resync":
                try:
                    handler(event)
                except Exception:  # one handler must not stop the others
                    log.exception("event handler failed for %s", event.topic)
        for sub in list(self._subscribers if subscribers else ()):
            if event.topic not in sub.topics and event.topic != "resync":
                continue
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                _drain(sub.queue)
                sub.queue.put_nowait(RESYNC)

    def on(self, topics: str | tuple[str, ...], handler: Handler) -> Callable[[], None]:
        """Call ``handler(event)`` synchronously for each event on ``topics`` (and on
        ``resync``); returns a function that removes it."""
        entry = (frozenset((topics,) if isinstance(topics, str) else topics), handler)
        self._handlers.append(entry)
        return lambda: self._handlers.remove(entry) if entry in self._handlers else None

    @contextlib.asynccontextmanager
    async def subscribe(self, *topics: str) -> AsyncIterator[asyncio.Queue[Event]]:
        """``async with bus.subscribe("registry") as queue: event = await queue.get()``;
        events published after entry are queued (at most :data:`QUEUE_SIZE`, then
        :data:`RESYNC`)."""
        sub = _Subscriber(frozenset(topics or TOPICS))
        self._subscribers.append(sub)
        try:
            yield sub.queue
        finally:
            self._subscribers.remove(sub)

    async def start(self) -> None:
        """Start listening for other replicas (nothing to do in process)."""

    async def close(self) -> None:
        """Stop listening; wakes no subscriber."""


def _drain(queue: asyncio.Queue[Event]) -> None:
    while True:
        try:
            queue.get_nowait()
        except asyncio.QueueEmpty:
            return
