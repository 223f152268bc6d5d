"""Which uid each live worker runs under (:class:`UidRange`): as root, every live worker
gets a uid no other live worker has (DESIGN §4.5), so workers cannot signal, trace or
re-prioritise each other."""

from __future__ import annotations

from .errors import SandboxUnavailable

# Uids for workers (as root): far above any account, below the 2**31 that some tools
# treat as signed; the platform passes BOLLARD_SANDBOX_UID_BASE / _COUNT.
DEFAULT_UID_RANGE = (1_900_000_000, 4096)
MAX_UID = 2**32 - 2  # (uid_t) -1 means "no change" to setresuid


class UidRange:
    """``count`` uids from ``first``, each handed to one live worker at a time.
    ``ValueError`` for a range that includes uid 0 or is empty."""

    def __init__(self, first: int, count: int) -> None:
        if first < 1 or count < 1 or first + count > MAX_UID:
            raise ValueError(
                f"uid_range must be (first, count) with 1 <= first and first + count <= {MAX_UID}"
            )
        self.first = first
        self.count = count
        self._in_use: set[int] = set()

    def take(self) -> int:
        """The lowest uid no live worker has, now in use. :class:`SandboxUnavailable` when
        every uid is in use."""
        uid = next((u for u in range(self.first, self.first + self.count) if u not in self._in_use), None)
        if uid is None:
            raise SandboxUnavailable(f"all {self.count} sandbox worker uids (uid_range) are in use")
        self._in_use.add(uid)
        return uid

    def free(self, uid: int) -> None:
        """``uid``'s worker process is gone: the uid may be handed out again."""
        self._in_use.discard(uid)

    def in_use(self) -> int:
        """How many uids are in use: live worker processes."""
        return len(self._in_use)
