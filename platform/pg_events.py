"""The event bus across replicas: PostgreSQL ``LISTEN/NOTIFY`` (DESIGN §12).

:class:`PgEventBus` is an :class:`~bollard.platform.events.EventBus` that also sends each
published event to the other replicas on one channel (:data:`CHANNEL`) and delivers
theirs here with ``remote=True`` (a ``registry`` event to handlers only: subscribers see
the registry event this replica raises once it has reloaded the folder). Each replica
holds one asyncpg connection of its own (not the state database's pool): it LISTENs, and
the same connection sends (``pg_notify``). Messages are small JSON, ``{"o": origin, "t":
topic, "p": payload}``; a replica skips messages carrying its own origin id (it delivered
them already when it published). A lost connection is re-opened with exponential backoff
(0.1 s doubling to :data:`MAX_BACKOFF_S`); events sent while it was down are not replayed
by PostgreSQL, so after every reconnect this replica delivers
:data:`~bollard.platform.events.RESYNC` locally and its handlers re-read what they cache
(``platform/replicas.py``). Events published here while disconnected are queued (at most
:data:`MAX_PENDING`) and sent on reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from typing import Any

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from bollard.platform.events import RESYNC, TOPICS, Event, EventBus

log = logging.getLogger("bollard.events")

CHANNEL = "bollard_events"
MAX_PAYLOAD_BYTES = 7000  # PostgreSQL refuses NOTIFY payloads of 8000 bytes or more
MAX_PENDING = 10_000
MAX_BACKOFF_S = 5.0
HEALTH_CHECK_S = 10.0  # a half-open connection (no FIN) is noticed this late at most


def asyncpg_dsn(url: URL) -> str:
    """A ``postgresql://`` DSN for asyncpg from the state database's SQLAlchemy URL."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class PgEventBus(EventBus):
    """:class:`EventBus` plus ``LISTEN/NOTIFY`` on the shared PostgreSQL."""

    def __init__(self, dsn: str) -> None:
        super().__init__()
        self.origin = uuid.uuid4().hex[:16]
        self._dsn = dsn
        self._conn: asyncpg.Connection | None = None
        self._pending: asyncio.Queue[str] = asyncio.Queue(MAX_PENDING)
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.connected = asyncio.Event()  # set while listening (tests wait on it)
        self.reconnects = 0

    def publish(self, topic: str, payload: dict[str, Any]) -> None:
        super().publish(topic, payload)
        message = json.dumps({"o": self.origin, "t": topic, "p": payload}, separators=(",", ":"))
        if len(message.encode()) > MAX_PAYLOAD_BYTES:
            log.warning("event on %s too large to send to other replicas (%d bytes)", topic, len(message))
            return
        try:
            self._pending.put_nowait(message)
        except asyncio.QueueFull:
            log.warning("other replicas unreachable: dropped an event on %s", topic)

    def listener_pid(self) -> int | None:
        """The PostgreSQL backend pid of the listener connection (``None`` while down)."""
        return self._conn.get_server_pid() if self._conn is not None else None

    def _on_notify(self, _conn: Any, _pid: int, _channel: str, message: str) -> None:
        try:
            data = json.loads(message)
            origin, topic, payload = data["o"], data["t"], data["p"]
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed event on %s", CHANNEL)
            return
        if origin == self.origin or topic not in TOPICS or not isinstance(payload, dict):
            return
        # Another replica's registry change reaches subscribers (MCP list_changed) as
        # this replica's own event once it reloaded the folder (platform/replicas.py).
        self.deliver(Event(topic, payload, remote=True), subscribers=topic != "registry")

    async def start(self) -> None:
        """Connect and LISTEN (waits at most 5 s for the first connection; the replica
        serves either way and keeps trying in the background)."""
        self._task = asyncio.get_running_loop().create_task(self._run())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.connected.wait(), 5)

    async def _run(self) -> None:
        backoff = 0.1
        first = True
        while not self._closing:
            lost = asyncio.Event()
            try:
                conn = await asyncpg.connect(self._dsn, timeout=5)
            except Exception as e:
                log.warning(
                    "event listener: cannot connect (%s); retrying in %.1f s", type(e).__name__, backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(MAX_BACKOFF_S, backoff * 2)
                continue
            try:
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._on_notify)
                self._conn = conn
                self.connected.set()
                backoff = 0.1
                if not first:
                    self.reconnects += 1
                    log.info("event listener reconnected; resyncing")
                    self.deliver(RESYNC)  # what other replicas said meanwhile is lost
                first = False
                await self._serve(conn, lost)
            except Exception as e:
                if not self._closing:
                    log.warning("event listener lost its connection: %s", type(e).__name__)
            finally:
                self.connected.clear()
                self._conn = None
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), 2)
                if not conn.is_closed():
                    conn.terminate()

    async def _serve(self, conn: asyncpg.Connection, lost: asyncio.Event) -> None:
        """Send queued events; check the connection when idle; return when it is lost."""
        while not lost.is_set():
            try:
                message = await asyncio.wait_for(self._pending.get(), HEALTH_CHECK_S)
            except TimeoutError:
                await asyncio.wait_for(conn.execute("SELECT 1"), 5)
                continue
            try:
                await asyncio.wait_for(conn.execute("SELECT pg_notify($1, $2)", CHANNEL, message), 5)
            except Exception:
                with contextlib.suppress(asyncio.QueueFull):
                    self._pending.put_nowait(message)  # sent after the reconnect (order may change)
                raise

    async def close(self) -> None:
        """Send what is queued (at most 2 s), then stop listening."""
        self._closing = True
        deadline = asyncio.get_running_loop().time() + 2
        while not self._pending.empty() and self._conn is not None:
            if asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task


async def notify_replicas(engine: AsyncEngine, topic: str, *payloads: dict[str, Any]) -> bool:
    """Send one event per payload on ``topic`` to every running replica from outside a
    server (the CLI), in one transaction; ``False`` (nothing sent) unless the state
    database is PostgreSQL."""
    if engine.dialect.name != "postgresql":
        return False
    origin = "cli-" + uuid.uuid4().hex[:8]
    async with engine.begin() as conn:
        for payload in payloads:
            message = json.dumps({"o": origin, "t": topic, "p": payload}, separators=(",", ":"))
            await conn.execute(
                text("SELECT pg_notify(:channel, :message)"), {"channel": CHANNEL, "message": message}
            )
    return True


def make_event_bus(url: URL) -> EventBus:
    """A :class:`PgEventBus` when the state database is PostgreSQL, else the in-process bus."""
    if url.get_backend_name() == "postgresql":
        return PgEventBus(asyncpg_dsn(url))
    return EventBus()
