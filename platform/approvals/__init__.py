"""Approvals: writes wait for a person, then run exactly once (DESIGN §6).

State machine: ``pending → approved → executing → succeeded | failed``, plus
``rejected`` and ``expired``. Approving is one server-side call that claims the row
atomically (``UPDATE … WHERE status = 'pending'``), so two people — or two replicas
sharing one PostgreSQL — approving at once run it once. An approval binds the
integration's content hash and the exact parameters: if the integration changed, the
approval is marked ``expired`` (``approval_stale``) and a new request is needed. The version
object that was checked is the one that runs: it is handed to the execution service, which
does not resolve the registry again; a change that lands while the claim is written makes
the approval stale instead of running the new version. An approval left
``executing`` by a killed process is marked ``failed`` once it is older than the
longest possible execution, or as soon as its lease lapses (the replica running it
renews ``lease_until`` every third of ``BOLLARD_APPROVAL_LEASE_S`` while it runs, so a
lapsed lease means that replica was killed), never re-run.

Modules: ``service.py`` (:class:`Approvals`: request, read, decide, run once), ``store.py``
(the rows: insert, the atomic claim, the execution lease, stale marks), ``expiry.py`` (TTL
and interrupted-execution sweeps, uninstall), ``events.py`` (webhook events in the same
transaction, the replicas' event bus, long polls), ``rows.py`` (statuses and the JSON shapes).
"""

from bollard.platform.approvals.service import Approvals

__all__ = ["Approvals"]
