"""The job queue on the state database's ``jobs`` table, worked in this process (DESIGN §12).

For the SQLite default (one process): jobs are rows of the state database, so an enqueue
commits or rolls back with the caller's transaction, and a restarted server finds every
job it had. A worker claims a row with one conditional ``UPDATE`` (it names the status and
lease it read, so two claims of one row cannot both succeed), renews the lease while the
handler runs, and deletes the row when the handler returns. A ``running`` row whose lease
ran out is due again. SQLite has no ``SKIP LOCKED``; its writers are serialised, which the
conditional claim relies on instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from bollard.platform.store.tables import jobs

from .base import DeadJob, Job, JobQueue, error_text

log = logging.getLogger("bollard.jobs")


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes for timezone-aware columns: they were stored as UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class TableJobQueue(JobQueue):
    """:class:`~.base.JobQueue` on the ``jobs`` table with an in-process worker loop."""

    _worker: asyncio.Task[None] | None = None
    _wake: asyncio.Event | None = None
    _tasks: set[asyncio.Task[None]]

    async def install(self) -> None:
        """Nothing: the ``jobs`` table is created by the state database's migrations."""

    async def enqueue(
        self,
        conn: AsyncConnection,
        kind: str,
        payload: dict[str, Any],
        *,
        delay_s: float = 0.0,
        unique_key: str | None = None,
    ) -> str | None:
        now = _now()
        if unique_key is not None:
            existing = (
                await conn.execute(
                    select(jobs.c.id).where(
                        jobs.c.unique_key == unique_key, jobs.c.status.in_(("queued", "running"))
                    )
                )
            ).first()
            if existing is not None:
                return None
        job_id = str(uuid.uuid4())
        await conn.execute(
            jobs.insert().values(
                id=job_id,
                kind=kind,
                payload=payload,
                status="queued",
                attempts=0,
                run_after=now + timedelta(seconds=max(0.0, delay_s)),
                unique_key=unique_key,
                created_at=now,
                updated_at=now,
            )
        )
        if self._wake is not None:  # a look before the commit finds nothing; the poll follows
            self._wake.set()
        return job_id

    def _due(self, now: datetime, kinds: list[str]) -> Any:
        return and_(
            jobs.c.kind.in_(kinds),
            or_(
                and_(jobs.c.status == "queued", jobs.c.run_after <= now),
                and_(jobs.c.status == "running", jobs.c.lease_until < now),
            ),
        )

    async def _claim(self, kinds: list[str], worker: str) -> Job | None:
        """Lease the next due job of ``kinds`` for ``worker``; ``None`` when none is due."""
        if not kinds:
            return None
        now = _now()
        lease_until = now + timedelta(seconds=self.settings.lease_s)
        for _ in range(3):  # another worker may claim the row first: look again
            async with self.engine.begin() as conn:
                row = (
                    await conn.execute(
                        select(jobs.c.id, jobs.c.kind, jobs.c.payload, jobs.c.attempts, jobs.c.status)
                        .where(self._due(now, kinds))
                        .order_by(jobs.c.run_after, jobs.c.created_at)
                        .limit(1)
                    )
                ).first()
                if row is None:
                    return None
                claimed = await conn.execute(
                    update(jobs)
                    .where(jobs.c.id == row.id, self._due(now, kinds))
                    .values(status="running", worker=worker, lease_until=lease_until, updated_at=now)
                )
            if claimed.rowcount == 1:
                return Job(str(row.id), str(row.kind), dict(row.payload or {}), int(row.attempts))
        return None

    async def take(self, kind: str) -> Job | None:
        return await self._claim([kind], f"taken-{uuid.uuid4()}")

    async def counts(self, kind: str | None = None) -> dict[str, int]:
        now = _now()
        expired = (jobs.c.status == "running") & (jobs.c.lease_until < now)
        query = select(jobs.c.status, expired, func.count()).group_by(jobs.c.status, expired)
        if kind is not None:
            query = query.where(jobs.c.kind == kind)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        out = {"queued": 0, "running": 0, "dead": 0}
        for status, expired, n in rows:
            key = "queued" if status == "running" and expired else str(status)
            out[key] = out.get(key, 0) + int(n)
        return out

    async def dead(self, limit: int = 100) -> list[DeadJob]:
        async with self.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(jobs)
                    .where(jobs.c.status == "dead")
                    .order_by(jobs.c.updated_at.desc())
                    .limit(max(1, limit))
                )
            ).all()
        return [
            DeadJob(str(r.id), str(r.kind), dict(r.payload or {}), int(r.attempts), r.last_error)
            for r in rows
        ]

    async def requeue(self, job_id: str) -> bool:
        now = _now()
        async with self.engine.begin() as conn:
            result = await conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.status == "dead")
                .values(
                    status="queued", attempts=0, run_after=now, worker=None, lease_until=None, updated_at=now
                )
            )
        if result.rowcount == 1 and self._wake is not None:
            self._wake.set()
        return bool(result.rowcount == 1)

    # ------------------------------------------------------------------ worker

    async def _start_worker(self) -> None:
        self._wake = asyncio.Event()
        self._tasks = set()
        self._slots = asyncio.Semaphore(self.settings.concurrency)
        self._worker_id = str(uuid.uuid4())
        self._worker = asyncio.get_running_loop().create_task(self._loop())

    async def _stop_worker(self, timeout_s: float) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.wait({self._worker}, timeout=timeout_s)
            self._worker = None
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=timeout_s)
            for task in pending:  # left leased: taken again after the lease
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=timeout_s)
        self._wake = None

    async def _loop(self) -> None:
        assert self._wake is not None
        while True:
            await self._slots.acquire()
            try:
                job = await self._claim(list(self.handlers), self._worker_id)
            except Exception:
                log.exception("job queue: claiming a job failed")
                job = None
            if job is None:
                self._slots.release()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.settings.poll_s)
                self._wake.clear()
                continue
            task = asyncio.get_running_loop().create_task(self._run(job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _renew(self, job: Job) -> None:
        while True:
            await asyncio.sleep(self.settings.lease_s / 2)
            with contextlib.suppress(Exception):
                async with self.engine.begin() as conn:
                    await conn.execute(
                        update(jobs)
                        .where(jobs.c.id == job.id, jobs.c.worker == self._worker_id)
                        .values(lease_until=_now() + timedelta(seconds=self.settings.lease_s))
                    )

    async def _run(self, job: Job) -> None:
        renew = asyncio.get_running_loop().create_task(self._renew(job))
        try:
            try:
                await self.handlers[job.kind](job)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                await self._failed(job, e)
            else:
                async with self.engine.begin() as conn:
                    await conn.execute(
                        jobs.delete().where(jobs.c.id == job.id, jobs.c.worker == self._worker_id)
                    )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job queue: recording the end of job %s failed; its lease will run out", job.id)
        finally:
            renew.cancel()
            self._slots.release()
            if self._wake is not None:
                self._wake.set()

    async def _failed(self, job: Job, error: Exception) -> None:
        delay = self.retry_delay(job, error)
        now = _now()
        values: dict[str, Any] = {
            "attempts": job.attempts + 1,
            "last_error": error_text(error),
            "worker": None,
            "lease_until": None,
            "updated_at": now,
        }
        if delay is None:
            log.warning(
                "job %s (%s) is dead after %d attempts: %s", job.id, job.kind, job.attempts + 1, error
            )
            values["status"] = "dead"
        else:
            values |= {"status": "queued", "run_after": now + timedelta(seconds=delay)}
        async with self.engine.begin() as conn:
            await conn.execute(
                update(jobs).where(jobs.c.id == job.id, jobs.c.worker == self._worker_id).values(**values)
            )
