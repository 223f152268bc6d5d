"""Durable background jobs: the job outbox (DESIGN §12).

A job is enqueued **in the caller's transaction** (:meth:`JobQueue.enqueue` takes the
SQLAlchemy connection of the state change it follows), so it exists exactly when that
change committed. Workers lease jobs, renew the lease while a handler runs, retry failures
with exponential backoff (or the delay a handler asks for, :class:`RetryJob`) and move a
job that failed ``max_attempts`` times to the dead-letter state, where it stays until
:meth:`JobQueue.requeue`.

Modules, one job each:

- :mod:`.base`: the interface (:class:`JobQueue`, :class:`Job`, :class:`RetryJob`), the
  retry decision, periodic sweeps;
- :mod:`.postgres`: PostgreSQL through pgqueuer (``FOR UPDATE SKIP LOCKED``, heartbeat
  leases, LISTEN/NOTIFY wake-ups, database-level retries, ``failed`` as dead letter);
- :mod:`.inprocess`: the same interface on the state database's ``jobs`` table with an
  in-process worker, for the SQLite default (one process);
- :func:`make_job_queue` picks one from the state database's dialect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import DeadJob, Job, JobQueue, JobSettings, RetryJob

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["DeadJob", "Job", "JobQueue", "JobSettings", "RetryJob", "make_job_queue"]


def make_job_queue(engine: AsyncEngine, settings: JobSettings) -> JobQueue:
    """The job queue for the state database behind ``engine``: pgqueuer on PostgreSQL,
    the in-process table queue on anything else (SQLite)."""
    if engine.dialect.name == "postgresql":
        from .postgres import PgJobQueue  # lazy: pgqueuer

        return PgJobQueue(engine, settings)
    from .inprocess import TableJobQueue

    return TableJobQueue(engine, settings)
