"""The workers of one integration version and tenant (:class:`WorkerGroup`): the idle
list, the busy and waiting counts under the group's cap, and the spare-before-retire
bookkeeping (a worker at its last execution keeps serving until its replacement is
ready, issue 15).

A group decides; it starts, stops and times nothing: the pool
(:mod:`bollard.sandbox.pool`) stops the workers a method hands back and runs the timers.
"""

from __future__ import annotations

import asyncio
from typing import Any

from .kinds import PYTHON, Checked, WorkerKind
from .limits import Limits
from .process import WorkerProcess


def fits(worker: WorkerProcess, limits: Limits) -> bool:
    """Whether ``worker`` was started for the memory and CPU limits of ``limits`` (a worker
    serves only executions with the limits it was started for)."""
    return (worker.memory_bytes, worker.cpu_time_ms) == (limits.memory_bytes, limits.cpu_time_ms)


class WorkerGroup:
    """The workers of one integration version and tenant (``key``, ``tenant``) running
    ``source`` (checked on the host: ``compiled``) in workers of ``kind``; at most ``cap``
    of them idle or busy (a spare may exceed it while it starts)."""

    def __init__(
        self, key: str, tenant: str, source: str, compiled: Checked, cap: int, kind: WorkerKind = PYTHON
    ) -> None:
        self.key = key
        self.kind = kind
        self.tenant = tenant
        self.source = source
        self.compiled = compiled
        self.cap = cap
        self.slots = asyncio.Semaphore(cap)
        self.idle: list[WorkerProcess] = []
        self.busy = 0
        self.running: set[WorkerProcess] = set()
        self.waiting = 0
        self.retired = False
        # workers at their last execution whose replacement is still starting: they keep
        # serving (past max_executions_per_worker) until it is ready, so no caller waits
        # for a spawn at a recycle
        self.awaiting_replacement: set[WorkerProcess] = set()
        self.spare_started: set[WorkerProcess] = set()  # one replacement per worker, ever
        self.warming = 0  # background spawns in flight (replacements, warm-ups)
        self.cold_starts = 0  # spawns a caller waited for
        self.keep_warm = False  # prewarmed: its last idle worker outlives the idle timeout

    def serves(self, source: str, kind: WorkerKind) -> bool:
        """Whether this group runs ``source`` in workers of ``kind``."""
        return (self.source is source or self.source == source) and self.kind is kind

    def superseded_by(self, key: str, source: str) -> bool:
        """Whether a group for ``key`` running ``source`` retires this one (of any tenant).
        ``"<integration>:<version>"`` keys: a new version retires the older ones; a new
        source under this key retires the other tenants' workers too."""
        integration = key.rpartition(":")[0]
        if self.key == key:
            return self.source != source
        return bool(integration) and self.key.rpartition(":")[0] == integration

    @property
    def empty(self) -> bool:
        """No worker idle, busy or starting."""
        return not self.idle and not self.busy and not self.warming

    @property
    def done(self) -> bool:
        """Retired, and no call runs or waits on it any more."""
        return self.retired and not self.busy and not self.waiting

    def take_idle(self, limits: Limits) -> tuple[WorkerProcess | None, list[WorkerProcess]]:
        """The newest live idle worker that fits ``limits`` (out of the idle list, its idle
        timer cancelled) or ``None``, and the dead ones found on the way (out of the list,
        for the caller to stop)."""
        dead: list[WorkerProcess] = []
        for worker in reversed(self.idle):
            if fits(worker, limits):
                self.idle.remove(worker)
                if worker.idle_timer is not None:
                    worker.idle_timer.cancel()
                    worker.idle_timer = None
                if worker.alive:
                    return worker, dead
                dead.append(worker)
        return None, dead

    def over_cap(self, keep: int = 0) -> list[WorkerProcess]:
        """The oldest idle workers beyond the cap, out of the idle list (for the caller to
        stop); at least ``keep`` idle workers stay."""
        excess: list[WorkerProcess] = []
        while len(self.idle) > keep and len(self.idle) + self.busy > self.cap:
            excess.append(self.idle.pop(0))
        return excess

    def needs_spare(self, worker: WorkerProcess, max_executions: int) -> bool:
        """Whether ``worker``'s next execution is its last and its replacement was never
        asked for; if so it now awaits one (it keeps serving until the spare is ready)."""
        if worker.executions < max_executions - 1 or worker in self.spare_started:
            return False
        self.spare_started.add(worker)
        self.awaiting_replacement.add(worker)
        return True

    def keeps(self, worker: WorkerProcess, max_executions: int) -> bool:
        """Whether ``worker`` may serve again: under ``max_executions``, or still awaiting
        its replacement."""
        return worker.executions < max_executions or worker in self.awaiting_replacement

    def replaced_by(self, limits: Limits) -> WorkerProcess | None:
        """A spare for ``limits`` is ready: the worker it replaces stops awaiting it and is
        returned (out of the idle list) when idle, for the caller to stop; ``None`` when
        there is none or it is busy (it retires when its execution ends)."""
        replaced = next((w for w in self.awaiting_replacement if fits(w, limits)), None)
        if replaced is None:
            return None
        self.awaiting_replacement.discard(replaced)
        if replaced not in self.idle:
            return None
        self.idle.remove(replaced)
        self.spare_started.discard(replaced)
        return replaced

    def forget(self, worker: WorkerProcess) -> None:
        """Drop ``worker`` from the spare bookkeeping (it is stopping)."""
        self.awaiting_replacement.discard(worker)
        self.spare_started.discard(worker)

    def stays_warm(self, worker: WorkerProcess) -> bool:
        """Whether ``worker`` is the last idle worker of a prewarmed group, which outlives
        the idle timeout."""
        return self.keep_warm and not self.busy and self.idle == [worker] and not self.retired

    def stats(self) -> dict[str, Any]:
        """``{"idle", "busy", "waiting", "starting", "cold_starts", "idle_pids"}`` (see
        :meth:`bollard.sandbox.pool.SandboxPool.stats`)."""
        return {
            "idle": len(self.idle),
            "busy": self.busy,
            "waiting": self.waiting,
            "starting": self.warming,
            "cold_starts": self.cold_starts,
            "idle_pids": [w.process.pid for w in self.idle],
        }
