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

A new worker sets its own nice value (:func:`raise_nice`, argv ``NICE`` of
:mod:`bollard.sandbox.worker` and :mod:`bollard.sandbox.js.launcher`) before it isolates
itself, while it still runs as the host's uid: raising one's own nice value needs no
privilege, so it holds for an unprivileged host and for a root host without
``CAP_SYS_NICE`` (Docker's default set) alike, and the threads Deno starts inherit it.
When a key crosses the threshold the pool also renices its live workers (:func:`renice`,
best effort: a worker under another uid, or lowering a nice value, needs
``CAP_SYS_NICE``; without it a live worker keeps its priority until it is replaced).
The worker cannot change it back: its seccomp filter refuses ``setpriority``.
"""

from __future__ import annotations

import contextlib
import os

# The pool's kill reasons that count against a key: wall time, a limit (CPU, memory,
# HTTP requests), a worker that died or broke the protocol.
STRIKE_REASONS = frozenset({"timeout", "limit_exceeded", "connector_error"})
LOWER_AT = 3.0
RESTORE_BELOW = 1.0
MAX_SCORE = 10.0
HALF_LIFE_RUNS = 8
MAX_NICE = 19
_FORGET_BELOW = 0.05  # a score this small is dropped (the dict stays small)


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

    def nice_for(self, key: str) -> int:
        """The nice value for ``key``'s workers: the host's own, plus ``nice_increment``
        when lowered (at most 19)."""
        base = os.getpriority(os.PRIO_PROCESS, 0)
        return min(MAX_NICE, base + self.nice_increment) if key in self._lowered else base


def raise_nice(value: int) -> None:
    """Raise the calling process's nice value to ``value`` (at most 19) when it is lower;
    never lowers it (that needs privilege). Called by a worker before isolation, while
    it has one thread."""
    value = min(MAX_NICE, value)
    if value > os.getpriority(os.PRIO_PROCESS, 0):
        os.setpriority(os.PRIO_PROCESS, 0, value)


def renice(pid: int, value: int) -> bool:
    """Set the nice value of every thread of every process in process group ``pid`` (a
    worker runs in its own session, so that is the worker and, for Deno, its threads;
    ``PRIO_PGRP`` reaches every thread, ``PRIO_PROCESS`` only one). Returns whether it
    was set: ``False`` when the group is gone or the host may not lower it back
    (unprivileged)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.setpriority(os.PRIO_PGRP, pid, value)
        return True
    return False
