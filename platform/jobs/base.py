"""The job queue interface shared by the PostgreSQL and in-process implementations (DESIGN §12).

Semantics every implementation keeps (the tests run one body against both):

- :meth:`JobQueue.enqueue` writes the job on the caller's connection, inside its
  transaction: rolled back, there is no job;
- a worker holds a **lease** on the job it runs and renews it while the handler runs; a
  job whose lease ran out (its worker died) is taken by another worker;
- a handler that raises is retried after :meth:`JobQueue.retry_delay` seconds
  (:class:`RetryJob` names its own delay, e.g. from ``Retry-After``); after
  ``max_attempts`` failed attempts the job is **dead** (kept, listed by
  :meth:`JobQueue.dead`, run again only by :meth:`JobQueue.requeue`);
- delivery is at least once: a handler must be idempotent (a worker may die after the
  handler's effect and before the job is marked done).
"""

from __future__ import annotations

import asyncio
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bollard.platform.retry import backoff

log = logging.getLogger("bollard.jobs")

KIND_MAX = 64  # characters of a job kind


@dataclass(frozen=True)
class Job:
    """One job as a handler sees it: ``id`` (text), ``kind``, the JSON ``payload`` given
    to :meth:`JobQueue.enqueue`, and ``attempts``: how many earlier attempts failed (0 on
    the first run)."""

    id: str
    kind: str
    payload: dict[str, Any]
    attempts: int = 0


@dataclass(frozen=True)
class DeadJob:
    """A job in the dead-letter state: it failed ``attempts`` times; ``error`` is the last
    failure's text when the implementation keeps it."""

    id: str
    kind: str
    payload: dict[str, Any]
    attempts: int
    error: str | None = None


class RetryJob(Exception):  # noqa: N818 - a request, not an error
    """Raised by a handler: run the job again after ``delay_s`` seconds (counts as a failed
    attempt, so ``max_attempts`` still ends it)."""

    def __init__(self, delay_s: float, reason: str = "") -> None:
        super().__init__(reason or f"retry in {delay_s:g} s")
        self.delay_s = max(0.0, delay_s)
        self.reason = reason


Handler = Callable[[Job], Awaitable[None]]


@dataclass(frozen=True)
class JobSettings:
    """How workers run jobs. Seconds throughout.

    ``max_attempts``: failed attempts before a job is dead; ``lease_s``: how long a job
    stays leased without a renewal (renewed every ``lease_s / 2`` while it runs), so a dead
    worker's job is taken again after at most this; ``backoff_base_s``/``backoff_cap_s``:
    the exponential backoff with full jitter of :func:`bollard.platform.retry.backoff`;
    ``poll_s``: the longest a worker sleeps between looks at the queue; ``concurrency``:
    jobs one worker runs at once.
    """

    max_attempts: int = 8
    lease_s: float = 60.0
    backoff_base_s: float = 2.0
    backoff_cap_s: float = 600.0
    poll_s: float = 5.0
    concurrency: int = 4


@dataclass
class _Sweep:
    kind: str
    interval_s: float
    task: asyncio.Task[None] | None = field(default=None)


class JobQueue(ABC):
    """Enqueue in the caller's transaction; run handlers by kind in a worker (see the
    module docstring for the guarantees). Register handlers with :meth:`handle` (and
    periodic sweeps with :meth:`every`) before :meth:`start`."""

    def __init__(self, engine: AsyncEngine, settings: JobSettings) -> None:
        self.engine = engine
        self.settings = settings
        self.handlers: dict[str, Handler] = {}
        self._sweeps: list[_Sweep] = []
        self.running = False
        # told of each failed attempt: on_failure(kind, dead) (the metrics count retries and
        # dead letters); both implementations decide through retry_delay, which calls it
        self.on_failure: Callable[[str, bool], None] | None = None

    # ------------------------------------------------------------------ registration

    def handle(self, kind: str, handler: Handler) -> None:
        """Run ``handler(job)`` for jobs of ``kind`` (at most :data:`KIND_MAX` characters).
        Raises ``ValueError`` for a kind registered twice."""
        if not kind or len(kind) > KIND_MAX:
            raise ValueError(f"job kind must be 1-{KIND_MAX} characters, got {kind!r}")
        if kind in self.handlers:
            raise ValueError(f"job kind {kind!r} already has a handler")
        self.handlers[kind] = handler

    def every(self, kind: str, interval_s: float, handler: Handler) -> None:
        """A periodic sweep: ``handler`` runs as a job of ``kind`` about every
        ``interval_s`` seconds (once at start). Each replica's ticker enqueues it unique
        (never a second queued one), so several replicas run it about once per interval.
        This is the hook for retention sweeps (execution log, files)."""
        self.handle(kind, handler)
        self._sweeps.append(_Sweep(kind, interval_s))

    # ------------------------------------------------------------------ the interface

    @abstractmethod
    async def install(self) -> None:
        """Create or upgrade what the queue stores (idempotent; safe on every start)."""

    @abstractmethod
    async def enqueue(
        self,
        conn: AsyncConnection,
        kind: str,
        payload: dict[str, Any],
        *,
        delay_s: float = 0.0,
        unique_key: str | None = None,
    ) -> str | None:
        """Add a job on ``conn``, inside its transaction; it runs no earlier than
        ``delay_s`` seconds from now. With ``unique_key``, nothing is added while a job
        with that key is queued or running (returns ``None`` then). Returns the job id."""

    @abstractmethod
    async def take(self, kind: str) -> Job | None:
        """Lease one due job of ``kind`` and do nothing with it, as a worker that died
        right after leasing would (tests and diagnostics); ``None`` when none is due."""

    @abstractmethod
    async def counts(self, kind: str | None = None) -> dict[str, int]:
        """``{"queued", "running", "dead"}``: jobs waiting (due or deferred), leased, dead;
        of ``kind`` only when given."""

    @abstractmethod
    async def dead(self, limit: int = 100) -> list[DeadJob]:
        """Dead jobs, newest first (at most ``limit``)."""

    @abstractmethod
    async def requeue(self, job_id: str) -> bool:
        """Queue a dead job again with its attempts reset; ``False`` when no dead job has
        that id."""

    async def prune_history(self, older_than_s: float) -> int:
        """Delete what the queue keeps about finished jobs older than ``older_than_s``
        seconds (dead jobs stay); returns how many rows. Nothing to do by default: the
        in-process queue deletes a job when it is done."""
        return 0

    @abstractmethod
    async def _start_worker(self) -> None: ...

    @abstractmethod
    async def _stop_worker(self, timeout_s: float) -> None: ...

    # ------------------------------------------------------------------ shared

    async def enqueue_now(
        self, kind: str, payload: dict[str, Any], *, delay_s: float = 0.0, unique_key: str | None = None
    ) -> str | None:
        """:meth:`enqueue` in a transaction of its own (work that follows no state change)."""
        async with self.engine.begin() as conn:
            return await self.enqueue(conn, kind, payload, delay_s=delay_s, unique_key=unique_key)

    def retry_delay(self, job: Job, error: BaseException) -> float | None:
        """Seconds before the next attempt of ``job`` after ``error``, or ``None``: it
        failed ``max_attempts`` times and is dead. :class:`RetryJob` gives its own delay;
        anything else backs off exponentially (full jitter, capped). Tells
        :attr:`on_failure` of the failure."""
        delay: float | None
        if job.attempts + 1 >= self.settings.max_attempts:
            delay = None
        elif isinstance(error, RetryJob):
            delay = error.delay_s
        else:
            s = self.settings
            delay = backoff(job.attempts, base_s=s.backoff_base_s, cap_s=s.backoff_cap_s)
        if self.on_failure is not None:
            try:
                self.on_failure(job.kind, delay is None)
            except Exception:  # metrics must never change what happens to a job
                log.exception("job failure observer failed")
        return delay

    async def start(self) -> None:
        """Start the worker and the sweep tickers (no-op when already running)."""
        if self.running:
            return
        self.running = True
        await self._start_worker()
        loop = asyncio.get_running_loop()
        for sweep in self._sweeps:
            sweep.task = loop.create_task(self._tick(sweep))

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Stop the tickers and the worker; running jobs get ``timeout_s`` seconds to end
        (an unfinished one stays leased and is taken again once its lease runs out)."""
        if not self.running:
            return
        self.running = False
        tickers = {sweep.task for sweep in self._sweeps if sweep.task is not None}
        for task in tickers:
            task.cancel()
        if tickers:
            await asyncio.wait(tickers, timeout=timeout_s)
        for sweep in self._sweeps:
            sweep.task = None
        await self._stop_worker(timeout_s)

    async def _tick(self, sweep: _Sweep) -> None:
        while True:
            try:
                await self.enqueue_now(sweep.kind, {}, unique_key=f"sweep:{sweep.kind}")
            except Exception:
                log.exception("could not enqueue the %s sweep", sweep.kind)
            await asyncio.sleep(sweep.interval_s)


def encode_payload(payload: dict[str, Any]) -> bytes:
    """The stored form of a payload: compact JSON, UTF-8."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def decode_payload(raw: bytes | str | dict[str, Any] | None) -> dict[str, Any]:
    """A stored payload back as a dict (``{}`` for none or anything that is not an object)."""
    if raw is None:
        return {}
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def error_text(error: BaseException) -> str:
    """A failure as one line for the job's record (type and message, at most 2000 characters)."""
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return text[:2000]
