"""CPU priority for the workers of an integration that keeps hitting its limits (issue 14
item 5: one integration cannot starve another).

The pool caps the workers of each integration, but a worker that loops still burns its
whole CPU limit each time. :class:`StrikeScores` keeps a score per integration key: each
execution that ends its worker on a limit or a crash (the pool's kill reasons in
:data:`STRIKE_REASONS`) adds 1, each execution after which the worker is reusable
multiplies it by ``2 ** (-1 / HALF_LIFE_RUNS)`` (it halves every 8 such runs). At
:data:`LOWER_AT` or more the key's workers run ``nice_increment`` nice levels below the
host (:func:`renice`); below :data:`RESTORE_BELOW` (hysteresis, so a key does not flip at
every call: less than one strike's worth left) new workers start at the host's priority
again. The score is capped at :data:`MAX_SCORE`, so a key recovers after at most 27
reusable runs (13 from :data:`LOWER_AT`).

Two knobs, because every worker is a session of its own: its nice value (what the
scheduler weighs among the tasks of one group: a systemd unit's or a container's cgroup)
and the nice value of its session's *autogroup* (``/proc/<pid>/autogroup``; where the
kernel groups tasks per session, ``sched_autogroup_enabled`` and no cgroup of their own,
sessions are weighed against each other and a task's own nice value counts only inside
its session: a worker alone in its session at nice 19 would get as much CPU as any
other). :class:`Priority` holds the two values. A new worker of a lowered key gets them
as argv ``NICE`` (:mod:`bollard.sandbox.worker`, :mod:`bollard.sandbox.js.launcher`) and
lowers itself (:func:`lower_self`) before it isolates itself, while it still runs as the
host's uid: raising a nice value needs no privilege, so this holds for an unprivileged
host and for a root host without ``CAP_SYS_NICE`` (Docker's default set) alike, and
Deno's threads inherit both. The pool also renices it as soon as it is started
(:func:`renice`; best effort, so that its interpreter's start, ~70 ms of CPU, runs lowered
too) and renices a key's live workers when the key crosses the threshold (best effort:
a worker under another uid, or lowering a nice value, needs privilege; without it a live
worker keeps its priority until it is replaced). The worker cannot change either back:
its seccomp filter refuses ``setpriority``, and Landlock leaves it no writable path.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

# The pool's kill reasons that count against a key: wall time, a limit (CPU, memory,
# HTTP requests), a worker that died or broke the protocol.
STRIKE_REASONS = frozenset({"timeout", "limit_exceeded", "connector_error"})
LOWER_AT = 3.0
RESTORE_BELOW = 1.0
MAX_SCORE = 10.0
HALF_LIFE_RUNS = 8
MAX_NICE = 19
_FORGET_BELOW = 0.05  # a score this small is dropped (the dict stays small)
# Unprivileged, the kernel takes one autogroup nice change per 100 ms machine-wide (EAGAIN).
AUTOGROUP_TRIES = 12
AUTOGROUP_RETRY_S = 0.02


@dataclass(frozen=True)
class Priority:
    """A worker's CPU priority: ``nice`` (its threads' nice value) and ``autogroup`` (its
    session's autogroup nice value; a worker's session starts at 0), both 0..19."""

    nice: int
    autogroup: int

    def arg(self) -> str:
        """As the worker's argv ``NICE``: ``"<nice>,<autogroup>"``."""
        return f"{self.nice},{self.autogroup}"

    @classmethod
    def parse(cls, arg: str) -> Priority:
        """The inverse of :meth:`arg`; ``ValueError`` for anything else."""
        nice, autogroup = (int(part) for part in arg.split(","))
        return cls(nice, autogroup)


class StrikeScores:
    """Strike scores per integration key, and whether its workers run at a lower CPU
    priority (``lowered``). ``nice_increment``: nice levels added to the host's for
    the workers of a lowered key (``0`` turns this off; ``ValueError`` when negative
    or over 19)."""

    def __init__(self, nice_increment: int = 10) -> None:
        if not 0 <= nice_increment <= MAX_NICE:
            raise ValueError("nice_increment must be between 0 and 19")
        self.nice_increment = nice_increment
        self._scores: dict[str, float] = {}
        self._lowered: set[str] = set()

    def strike(self, key: str) -> bool:
        """Count one execution of ``key`` that hit a limit or crashed; returns whether
        the key's workers just became lowered."""
        score = min(MAX_SCORE, self._scores.get(key, 0.0) + 1.0)
        self._scores[key] = score
        if score >= LOWER_AT and key not in self._lowered and self.nice_increment:
            self._lowered.add(key)
            return True
        return False

    def clean(self, key: str) -> bool:
        """Count one execution of ``key`` after which its worker is reusable; returns
        whether the key just recovered (its new workers start at the host's priority)."""
        score = self._scores.get(key)
        if score is None:
            return False
        score *= 2 ** (-1 / HALF_LIFE_RUNS)
        if score < _FORGET_BELOW:
            del self._scores[key]
        else:
            self._scores[key] = score
        if score < RESTORE_BELOW and key in self._lowered:
            self._lowered.discard(key)
            return True
        return False

    def forget(self, key: str) -> None:
        """Drop ``key``'s score (its version was retired or its source replaced)."""
        self._scores.pop(key, None)
        self._lowered.discard(key)

    def lowered(self, key: str) -> bool:
        """Whether ``key``'s workers run at the lower priority."""
        return key in self._lowered

    def snapshot(self) -> dict[str, dict[str, float | bool]]:
        """``{key: {"score": float, "lowered": bool}}`` for every key with a score."""
        return {k: {"score": round(s, 3), "lowered": k in self._lowered} for k, s in self._scores.items()}

    def priority(self, key: str) -> Priority:
        """The priority for ``key``'s workers: the host's nice value and autogroup nice 0,
        or ``nice_increment`` levels below both when lowered (at most 19)."""
        base = os.getpriority(os.PRIO_PROCESS, 0)
        levels = self.nice_increment if key in self._lowered else 0
        return Priority(min(MAX_NICE, base + levels), levels)


def autogroup_nice(pid: int | str = "self") -> int | None:
    """The nice value of ``pid``'s autogroup (``/proc/<pid>/autogroup``: ``/autogroup-N
    nice X``), ``None`` where the kernel has none or the file cannot be read."""
    try:
        with open(f"/proc/{pid}/autogroup") as f:
            return int(f.read().split()[-1])
    except (OSError, ValueError, IndexError):
        return None


def set_autogroup_nice(pid: int | str, value: int, tries: int = 1) -> bool:
    """Set ``pid``'s autogroup nice value to ``value`` (clamped to 0..19), ``tries`` times
    at most while the kernel answers ``EAGAIN`` (its rate limit); whether it was set."""
    value = max(0, min(MAX_NICE, value))
    for attempt in range(tries):
        try:
            with open(f"/proc/{pid}/autogroup", "w") as f:
                f.write(str(value))
            return True
        except BlockingIOError:
            if attempt + 1 < tries:
                time.sleep(AUTOGROUP_RETRY_S)
        except OSError:
            return False
    return False


def lower_self(priority: Priority) -> None:
    """Lower the calling process to ``priority`` where it runs higher: its nice value,
    and its autogroup's (best effort: up to :data:`AUTOGROUP_TRIES` tries against the
    kernel's rate limit); never raises either (that needs privilege). Called by a worker
    before isolation, in its own new session, with one thread."""
    if priority.nice > os.getpriority(os.PRIO_PROCESS, 0):
        os.setpriority(os.PRIO_PROCESS, 0, min(MAX_NICE, priority.nice))
    current = autogroup_nice()
    if current is not None and priority.autogroup > current:
        set_autogroup_nice("self", priority.autogroup, tries=AUTOGROUP_TRIES)


def renice(pid: int, priority: Priority) -> bool:
    """Set the worker whose process group (and session) is ``pid`` to ``priority``:
    every thread of the group (``PRIO_PGRP`` reaches every thread, ``PRIO_PROCESS`` one)
    and its autogroup. Returns whether both were set: ``False`` when it is gone or the
    host may not (lowering a nice value, or a process of another uid or not dumpable,
    without privilege); each is tried."""
    try:
        os.setpriority(os.PRIO_PGRP, pid, priority.nice)
        threads = True
    except (ProcessLookupError, PermissionError):
        threads = False
    group = autogroup_nice(pid) is None or set_autogroup_nice(pid, priority.autogroup)
    return threads and group
