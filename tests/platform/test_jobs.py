"""The job outbox (platform/jobs/, DESIGN §12): one test body, both implementations
(pgqueuer on a real PostgreSQL, the in-process table queue on SQLite)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select, text

from bollard.platform.jobs import Job, JobQueue, JobSettings, RetryJob, make_job_queue
from bollard.platform.store.db import create_engine, migrate
from tests.support.jobs import BACKENDS, state_database_url, until

FAST = JobSettings(max_attempts=3, lease_s=1.0, backoff_base_s=0.01, backoff_cap_s=0.05, poll_s=0.2)


@pytest.fixture(params=BACKENDS)
async def queue(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[JobQueue]:
    async with state_database_url(request.param, tmp_path) as url:
        engine = create_engine(url)
        await migrate(engine)
        q = make_job_queue(engine, FAST)
        await q.install()
        try:
            yield q
        finally:
            await q.stop()
            await engine.dispose()


async def test_the_backend_follows_the_state_database(queue: JobQueue) -> None:
    expected = "PgJobQueue" if queue.engine.dialect.name == "postgresql" else "TableJobQueue"
    assert type(queue).__name__ == expected
    await queue.install()  # idempotent: a second start installs nothing twice


async def test_a_job_enqueued_in_a_rolled_back_transaction_does_not_exist(queue: JobQueue) -> None:
    class Rollback(Exception):
        pass

    with pytest.raises(Rollback):
        async with queue.engine.begin() as conn:
            await conn.execute(text("SELECT 1"))
            assert await queue.enqueue(conn, "t.work", {"n": 1}) is not None
            raise Rollback
    assert await queue.counts() == {"queued": 0, "running": 0, "dead": 0}
    async with queue.engine.begin() as conn:
        await queue.enqueue(conn, "t.work", {"n": 2})
    assert (await queue.counts())["queued"] == 1


async def test_a_worker_runs_each_committed_job_once(queue: JobQueue) -> None:
    seen: list[Job] = []
    queue.handle("t.work", lambda job: _append(seen, job))
    for n in range(5):
        await queue.enqueue_now("t.work", {"n": n})
    await queue.start()
    await until(lambda: _true(len(seen) == 5), "five jobs")
    await until(lambda: _counts_are(queue, queued=0, running=0), "the queue to empty")
    assert sorted(j.payload["n"] for j in seen) == [0, 1, 2, 3, 4]


async def test_unique_key_keeps_one_queued_job(queue: JobQueue) -> None:
    assert await queue.enqueue_now("t.sweep", {}, unique_key="sweep:t") is not None
    assert await queue.enqueue_now("t.sweep", {}, unique_key="sweep:t") is None
    assert (await queue.counts())["queued"] == 1


async def test_a_dead_workers_lease_runs_out_and_another_worker_takes_the_job(queue: JobQueue) -> None:
    ran: list[Job] = []
    queue.handle("t.work", lambda job: _append(ran, job))
    job_id = await queue.enqueue_now("t.work", {"n": 1})
    taken = await queue.take("t.work")  # leased by a worker that then "dies": no renewal, no end
    assert taken is not None and taken.id == job_id
    assert (await queue.counts())["running"] == 1
    assert await queue.take("t.work") is None  # leased: nobody else gets it meanwhile
    await queue.start()
    await until(lambda: _true(len(ran) == 1), "another worker to take the expired lease")
    assert ran[0].id == job_id and ran[0].payload == {"n": 1}
    await until(lambda: _counts_are(queue, queued=0, running=0), "the job to be done")


async def test_failures_are_retried_with_backoff_then_dead_then_requeued(queue: JobQueue) -> None:
    attempts: list[int] = []
    healthy = asyncio.Event()

    async def flaky(job: Job) -> None:
        attempts.append(job.attempts)
        if not healthy.is_set():
            raise RuntimeError(f"upstream down (attempt {job.attempts})")

    queue.handle("t.flaky", flaky)
    job_id = await queue.enqueue_now("t.flaky", {"k": "v"})
    await queue.start()
    await until(lambda: _counts_are(queue, dead=1), "the job to be dead")
    assert attempts == [0, 1, 2]  # max_attempts = 3, each after a backoff
    (dead,) = await queue.dead()
    assert dead.id == job_id and dead.kind == "t.flaky" and dead.payload == {"k": "v"}
    assert dead.attempts == 3
    await until(lambda: _has_error(queue, "upstream down"), "the last error on the dead job")
    assert await queue.requeue("no-such-job") is False
    healthy.set()
    assert await queue.requeue(job_id) is True
    await until(lambda: _counts_are(queue, queued=0, running=0, dead=0), "the requeued job to run")
    assert attempts == [0, 1, 2, 0]  # attempts reset by the requeue


async def test_retry_job_names_its_own_delay(queue: JobQueue) -> None:
    attempts: list[int] = []

    async def later(job: Job) -> None:
        attempts.append(job.attempts)
        if job.attempts == 0:
            raise RetryJob(0.3, "asked to wait")

    queue.handle("t.later", later)
    await queue.enqueue_now("t.later", {})
    await queue.start()
    await until(lambda: _true(attempts == [0, 1]), "the retried attempt")
    assert queue.retry_delay(Job("x", "t.later", {}, 0), RetryJob(7.5)) == 7.5
    assert queue.retry_delay(Job("x", "t.later", {}, 2), RetryJob(7.5)) is None  # the last attempt


async def test_a_sweep_runs_at_start(queue: JobQueue) -> None:
    ran: list[Job] = []
    queue.every("t.sweep", 3600, lambda job: _append(ran, job))
    await queue.start()
    await until(lambda: _true(len(ran) == 1), "the sweep's first run")


async def _append(into: list[Job], job: Job) -> None:
    into.append(job)


async def _true(value: bool) -> bool:
    return value


async def _counts_are(queue: JobQueue, **expected: int) -> bool:
    counts = await queue.counts()
    return all(counts[k] == v for k, v in expected.items())


async def _has_error(queue: JobQueue, fragment: str) -> bool:
    dead = await queue.dead()
    return bool(dead) and fragment in (dead[0].error or "")


@pytest.mark.parametrize("backend", BACKENDS)
async def test_the_retention_sweeps_are_jobs(backend: str, tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from bollard.platform.runtime import Runtime
    from bollard.platform.settings import Settings
    from bollard.platform.store.tables import executions

    async with state_database_url(backend, tmp_path / "state") as url:
        settings = Settings(
            integrations_dir=tmp_path / "integrations",
            data_dir=tmp_path / "data",
            database_url=url,
            secret_key="k",
            reload=False,
            execution_retention_days=1,
            jobs_worker=False,
        )
        (tmp_path / "integrations").mkdir()
        async with Runtime(settings) as rt:
            old, new = datetime.now(UTC) - timedelta(days=2), datetime.now(UTC)
            async with rt.db.begin() as conn:
                for name, started in (("old", old), ("new", new)):
                    await conn.execute(
                        executions.insert().values(
                            id=name,
                            started_at=started,
                            caller="api",
                            integration="x",
                            operation="y",
                            status="ok",
                        )
                    )
            from bollard.platform.files.store import FileOwner
            from bollard.platform.store.tables import files

            stored = await rt.files.save(
                b"old bytes", file_name="a.txt", content_type="text/plain", owner=FileOwner("x", "y")
            )
            async with rt.db.begin() as conn:  # its retention passed
                await conn.execute(files.update().values(expires_at=old))
            path = rt.files.directory / stored["fileId"]
            assert path.exists()
            from bollard.platform.store.tables import webhook_deliveries

            async with rt.db.begin() as conn:  # finished deliveries past the retention go too
                for did, status in (("d-old", "delivered"), ("d-dead", "dead"), ("d-pending", "pending")):
                    await conn.execute(
                        webhook_deliveries.insert().values(
                            id=did,
                            endpoint="ops",
                            url="https://h.example/",
                            event_id="e",
                            event_type="t",
                            body="{}",
                            status=status,
                            attempts=1,
                            created_at=old,
                        )
                    )
            assert (await rt.jobs.counts("executions.retention")) == {"queued": 0, "running": 0, "dead": 0}
            await rt.jobs.start()  # the sweeps are enqueued at start and run by the worker
            await until(lambda: _ids_are(rt, {"new"}), "the old record to be pruned")
            await until(lambda: _true(not path.exists()), "the expired file to be removed")
            assert await rt.files.get(stored["fileId"]) is None

            async def only_pending_left() -> bool:
                async with rt.db.connect() as conn:
                    return list((await conn.execute(select(webhook_deliveries.c.id))).scalars()) == [
                        "d-pending"
                    ]

            await until(only_pending_left, "finished deliveries to be pruned")
            assert await rt.jobs.prune_history(0) >= 0  # the queue's own history (pgqueuer's log)


async def _ids_are(rt: object, expected: set[str]) -> bool:
    from sqlalchemy import select

    from bollard.platform.store.tables import executions

    async with rt.db.connect() as conn:  # type: ignore[attr-defined]
        return {r.id for r in (await conn.execute(select(executions.c.id))).all()} == expected
