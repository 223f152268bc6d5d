"""The job queue on PostgreSQL through pgqueuer (DESIGN §12: a well-kept job library).

Why pgqueuer (1.6) over procrastinate (3.x): pgqueuer speaks asyncpg, the driver of the
state database, and its enqueue is one statement on any asyncpg connection, so
:meth:`PgJobQueue.enqueue` runs it on the **caller's own connection, inside its
transaction** (the raw asyncpg connection under the SQLAlchemy one): the job commits or
rolls back with the state change. procrastinate needs psycopg (a second driver and pool)
and enqueues on its own connection except under Django. pgqueuer also brings what the
outbox needs: ``FOR UPDATE SKIP LOCKED`` dequeues, heartbeats as leases (a job whose
heartbeat is older than ``lease_s`` is taken by another worker), LISTEN/NOTIFY wake-ups,
database-level retries with a delay (``RetryRequested``) and a held ``failed`` status
(our dead letter, re-queued by ``requeue_jobs``).

pgqueuer's tables (``pgqueuer``, ``pgqueuer_log``, …) live in the state database next to
Bollard's; :meth:`PgJobQueue.install` creates them once (under an advisory lock, so
replicas starting together install once) and leaves an installed schema alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
from pgqueuer import Queries, QueueManager
from pgqueuer.db import AsyncpgDriver, AsyncpgPoolDriver
from pgqueuer.domain.errors import RetryRequested
from pgqueuer.executors import EntrypointExecutor, EntrypointExecutorParameters
from pgqueuer.models import Context
from pgqueuer.models import Job as PgqJob
from pgqueuer.ports.repository import EntrypointExecutionParameter
from pgqueuer.types import QueueManagerId
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from .base import DeadJob, Job, JobQueue, JobSettings, decode_payload, encode_payload, error_text

log = logging.getLogger("bollard.jobs")

# pg_advisory_lock key of the install (Bollard's migrations use 727274).
_INSTALL_LOCK = 727275


def asyncpg_dsn(engine: AsyncEngine) -> str:
    """A plain ``postgresql://`` DSN for asyncpg from the state database engine's URL."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


async def _raw(conn: AsyncConnection) -> asyncpg.Connection:
    """The asyncpg connection under ``conn``, inside the transaction SQLAlchemy opened."""
    raw = (await conn.get_raw_connection()).driver_connection
    assert isinstance(raw, asyncpg.Connection)
    if not raw.is_in_transaction():  # SQLAlchemy begins lazily, on the first statement
        await conn.execute(text("SELECT 1"))
    return raw


class _Executor(EntrypointExecutor):
    """Runs our handler for a pgqueuer job and turns a failure into a database-level retry
    (``RetryRequested`` with :meth:`JobQueue.retry_delay`) or, after ``max_attempts``, into
    a terminal failure that pgqueuer holds as ``failed`` (``on_failure="hold"``)."""

    queue: PgJobQueue | None = None

    async def execute(self, job: PgqJob, context: Context) -> None:
        assert self.queue is not None
        ours = Job(str(job.id), str(job.entrypoint), decode_payload(job.payload), int(job.attempts))
        try:
            await self.queue.handlers[ours.kind](ours)
        except Exception as e:
            delay = self.queue.retry_delay(ours, e)
            if delay is None:
                log.warning(
                    "job %s (%s) is dead after %d attempts: %s", ours.id, ours.kind, ours.attempts + 1, e
                )
                raise
            raise RetryRequested(delay=timedelta(seconds=delay), reason=error_text(e)) from e


class PgJobQueue(JobQueue):
    """:class:`~.base.JobQueue` on pgqueuer; the worker is pgqueuer's ``QueueManager`` on
    an asyncpg pool of its own (one listening connection and a few for queries)."""

    def __init__(self, engine: AsyncEngine, settings: JobSettings) -> None:
        super().__init__(engine, settings)
        self._pool: asyncpg.Pool | None = None
        self._qm: QueueManager | None = None
        self._run: asyncio.Task[None] | None = None

    async def _connection(self) -> asyncpg.Connection:
        return await asyncpg.connect(asyncpg_dsn(self.engine), timeout=10)

    async def install(self) -> None:
        conn = await self._connection()
        try:
            async with conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", _INSTALL_LOCK)
                queries = Queries(AsyncpgDriver(conn))
                if not await queries.schema_is_installed():
                    await queries.install()
        finally:
            await conn.close()

    async def enqueue(
        self,
        conn: AsyncConnection,
        kind: str,
        payload: dict[str, Any],
        *,
        delay_s: float = 0.0,
        unique_key: str | None = None,
    ) -> str | None:
        queries = Queries(AsyncpgDriver(await _raw(conn)))
        ids = await queries.enqueue(
            kind,
            encode_payload(payload),
            execute_after=timedelta(seconds=max(0.0, delay_s)),
            dedupe_key=unique_key,
            on_conflict="skip" if unique_key is not None else "raise",
        )
        return None if not ids or ids[0] is None else str(ids[0])

    async def _queries(self) -> tuple[Queries, asyncpg.Connection]:
        conn = await self._connection()
        return Queries(AsyncpgDriver(conn)), conn

    async def take(self, kind: str) -> Job | None:
        queries, conn = await self._queries()
        try:
            found = await queries.dequeue(
                batch_size=1,
                entrypoints={kind: EntrypointExecutionParameter(concurrency_limit=0)},  # type: ignore[dict-item]
                queue_manager_id=QueueManagerId(uuid.uuid4()),
                global_concurrency_limit=None,
                heartbeat_timeout=timedelta(seconds=self.settings.lease_s),
            )
        finally:
            await conn.close()
        if not found:
            return None
        j = found[0]
        return Job(str(j.id), str(j.entrypoint), decode_payload(j.payload), int(j.attempts))

    async def counts(self, kind: str | None = None) -> dict[str, int]:
        queries, conn = await self._queries()
        table = queries.qbe.settings.queue_table
        try:
            rows = await conn.fetch(
                f"SELECT status::text AS status, (heartbeat < NOW() - $1::interval) AS stale, count(*) AS n "
                f"FROM {table} WHERE $2::text IS NULL OR entrypoint = $2::text GROUP BY 1, 2",
                timedelta(seconds=self.settings.lease_s),
                kind,
            )
        finally:
            await conn.close()
        out = {"queued": 0, "running": 0, "dead": 0}
        for r in rows:
            status = r["status"]
            key = {"failed": "dead", "picked": "queued" if r["stale"] else "running"}.get(status, status)
            if key in out:
                out[key] += int(r["n"])
        return out

    async def dead(self, limit: int = 100) -> list[DeadJob]:
        queries, conn = await self._queries()
        log_table = queries.qbe.settings.queue_table_log
        try:
            held = await queries.list_failed_jobs(limit=max(1, limit))
            out = []
            for j in held:
                tb = await conn.fetchval(
                    f"SELECT traceback FROM {log_table} WHERE job_id = $1 AND traceback IS NOT NULL "
                    "ORDER BY id DESC LIMIT 1",
                    j.id,
                )
                error = None
                if tb is not None:
                    record = json.loads(tb) if isinstance(tb, str) else tb
                    error = f"{record.get('exception_type')}: {record.get('exception_message')}"[:2000]
                out.append(
                    DeadJob(str(j.id), str(j.entrypoint), decode_payload(j.payload), j.attempts + 1, error)
                )
        finally:
            await conn.close()
        return out

    async def requeue(self, job_id: str) -> bool:
        if not job_id.isdigit():
            return False
        queries, conn = await self._queries()
        table = queries.qbe.settings.queue_table
        try:
            async with conn.transaction():
                found = await conn.fetchval(
                    f"SELECT count(*) FROM {table} WHERE id = $1 AND status = 'failed'", int(job_id)
                )
                if found:
                    await queries.requeue_jobs([int(job_id)])  # type: ignore[list-item]
        finally:
            await conn.close()
        return bool(found)

    async def prune_history(self, older_than_s: float) -> int:
        """pgqueuer keeps a log row per job status change (folded into per-second
        statistics) for ever: delete aggregated log rows and statistics older than this."""
        queries, conn = await self._queries()
        settings = queries.qbe.settings
        age = timedelta(seconds=older_than_s)
        try:
            logs = await conn.execute(
                f"DELETE FROM {settings.queue_table_log} WHERE aggregated AND created < NOW() - $1::interval",
                age,
            )
            stats = await conn.execute(
                f"DELETE FROM {settings.statistics_table} WHERE created < NOW() - $1::interval", age
            )
        finally:
            await conn.close()
        return int(logs.split()[-1]) + int(stats.split()[-1])

    # ------------------------------------------------------------------ worker

    async def _start_worker(self) -> None:
        s = self.settings
        self._pool = await asyncpg.create_pool(asyncpg_dsn(self.engine), min_size=1, max_size=4)
        qm = QueueManager(Queries(AsyncpgPoolDriver(self._pool)))
        for kind in self.handlers:
            executor = _Executor(
                EntrypointExecutorParameters(
                    concurrency_limit=0, func=self._unused, accepts_context=False, on_failure="hold"
                )
            )
            executor.queue = self
            qm.register_executor(kind, executor)
        self._qm = qm
        self._run = asyncio.get_running_loop().create_task(
            qm.run(
                dequeue_timeout=timedelta(seconds=s.poll_s),
                batch_size=max(1, s.concurrency // 2),
                max_concurrent_tasks=max(2, s.concurrency),
                heartbeat_timeout=timedelta(seconds=s.lease_s),
            )
        )
        self._run.add_done_callback(self._ended)

    @staticmethod
    async def _unused(job: PgqJob) -> None:  # pragma: no cover - _Executor.execute runs instead
        raise NotImplementedError

    @staticmethod
    def _ended(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("the job worker stopped: %s", task.exception())

    async def _stop_worker(self, timeout_s: float) -> None:
        if self._qm is not None:
            self._qm.shutdown.set()
        if self._run is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._run), timeout_s)
            except (TimeoutError, Exception):
                self._run.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await self._run
            self._run = None
        self._qm = None
        if self._pool is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._pool.close(), 5)
            self._pool = None
