"""Prometheus metrics of one replica (DESIGN §12: ``/metrics`` with ``prometheus-client``).

One :class:`Metrics` per :class:`~bollard.platform.runtime.Runtime`, with its own
``CollectorRegistry`` (several runtimes in one process, as in the tests, never share or
double-register a series). Two kinds of series:

- counters and histograms updated on the call path (:meth:`Metrics.on_execution` is the
  execution log's observer, so every recorded call counts once; each update is a dict
  look-up and an add under a lock, ~1 µs);
- values read at scrape time from plain data (sandbox pool counters, registry entries,
  approval counts from the state database, and anything registered with
  :meth:`Metrics.register_gauge_callback`, e.g. the job outbox's queue depth), so the
  call path pays nothing for them.

Label values are bounded: ``integration``/``operation`` are those of a loaded
integration and a declared operation, else ``_unknown`` (a caller cannot mint series by
asking for made-up slugs); ``outcome`` is ``succeeded``, ``pending_approval`` or an
error code of DESIGN §8; ``reason`` values are error codes or the pool's kill reasons.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from bollard.platform.packages import IntegrationVersion
    from bollard.platform.registry import IntegrationEntry
    from bollard.platform.runtime import Runtime

log = logging.getLogger("bollard.metrics")
# No `<name>_created` series next to each counter and histogram: half the exposition for a
# timestamp Prometheus does not need (process-wide, as the client library offers it).
disable_created_metrics()

CONTENT_TYPE = CONTENT_TYPE_LATEST
UNKNOWN = "_unknown"
# Seconds: from a mock answer (~1 ms) to the longest wall time an operator allows (120 s).
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
RATE_LIMIT_CODES = frozenset({"rate_limited", "too_many_concurrent"})

#: ``fn()`` of a gauge callback: one value, or values by a tuple of label values.
GaugeValue = float | Mapping[tuple[str, ...], float]


@dataclass(frozen=True)
class _Callback:
    name: str
    documentation: str
    labels: tuple[str, ...]
    fn: Callable[[], GaugeValue]
    kind: str  # "gauge" or "counter"


class _CallbackCollector(Collector):
    """Yields the registered callbacks' values at scrape time; a failing callback is logged
    and left out of that scrape (the others still answer)."""

    def __init__(self) -> None:
        self.callbacks: dict[str, _Callback] = {}

    def collect(self) -> Iterator[Metric]:
        for cb in list(self.callbacks.values()):
            try:
                value = cb.fn()
            except Exception:
                log.exception("metrics callback %s failed", cb.name)
                continue
            family: GaugeMetricFamily | CounterMetricFamily
            if cb.kind == "counter":
                family = CounterMetricFamily(cb.name, cb.documentation, labels=cb.labels)
            else:
                family = GaugeMetricFamily(cb.name, cb.documentation, labels=cb.labels)
            if isinstance(value, Mapping):
                for label_values, v in value.items():
                    family.add_metric(list(label_values), float(v))
            else:
                family.add_metric([], float(value))
            yield family


class Metrics:
    """The metric objects of one replica; :meth:`render` is the ``/metrics`` body.

    Named objects other modules update directly (all ``prometheus_client`` metrics):
    ``executions`` {integration, operation, outcome}, ``execution_seconds``
    {integration, operation}, ``egress_refusals`` {reason}, ``sql_truncations``
    {integration, reason}, ``sql_timeouts`` {integration}, ``rate_limit_refusals``
    {integration, reason}, ``registry_load_errors`` {integration}, ``outbox_retries``
    {kind} and ``outbox_dead`` {kind} (the job outbox's retries and dead letters).
    """

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=False)
        self.executions = Counter(
            "bollard_executions",
            "Executions recorded, by integration, operation and outcome (succeeded, "
            "pending_approval or the error code)",
            ("integration", "operation", "outcome"),
            registry=r,
        )
        self.execution_seconds = Histogram(
            "bollard_execution_duration_seconds",
            "Wall time of executions from the call to its envelope (s)",
            ("integration", "operation"),
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.egress_refusals = Counter(
            "bollard_egress_refusals",
            "Connector HTTP requests refused or failed by the host, by reason (error code)",
            ("reason",),
            registry=r,
        )
        self.sql_truncations = Counter(
            "bollard_sql_truncations",
            "SQL results cut by the row cap or the byte budget, by integration and reason",
            ("integration", "reason"),
            registry=r,
        )
        self.sql_timeouts = Counter(
            "bollard_sql_timeouts", "SQL executions that hit their timeout", ("integration",), registry=r
        )
        self.rate_limit_refusals = Counter(
            "bollard_rate_limit_refusals",
            "Calls refused by a rate limit (rate_limited) or the concurrency cap (too_many_concurrent)",
            ("integration", "reason"),
            registry=r,
        )
        self.registry_load_errors = Counter(
            "bollard_registry_load_errors",
            "Integration folder loads that failed (the last good version keeps serving)",
            ("integration",),
            registry=r,
        )
        self.outbox_retries = Counter(
            "bollard_outbox_retries",
            "Job outbox attempts that failed and were retried",
            ("kind",),
            registry=r,
        )
        self.outbox_dead = Counter(
            "bollard_outbox_dead", "Job outbox jobs moved to the dead-letter state", ("kind",), registry=r
        )
        # the label children of each (integration, operation, outcome): .labels() costs
        # several µs a call, a dict look-up well under one
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        # read from the state database before each scrape (refresh): approvals and the job
        # outbox's jobs, by state
        self.approval_counts: dict[str, int] = {}
        self.job_counts: dict[str, int] = {}
        self._callbacks = _CallbackCollector()
        r.register(self._callbacks)

    # --- hooks for other modules ------------------------------------------------------

    def register_gauge_callback(
        self,
        name: str,
        documentation: str,
        fn: Callable[[], GaugeValue],
        labels: Iterable[str] = (),
        *,
        kind: str = "gauge",
    ) -> None:
        """Expose ``fn()`` as the metric ``name`` at each scrape (it must be quick and must
        not block: it runs on the event loop). ``fn`` returns a number, or a mapping of
        label-value tuples (in the order of ``labels``) to numbers. ``kind="counter"``
        for a monotonic count kept elsewhere (the name then gets ``_total``). Registering
        ``name`` again replaces the callback (a restarted service re-registers)."""
        if kind not in ("gauge", "counter"):
            raise ValueError("kind must be 'gauge' or 'counter'")
        self._callbacks.callbacks[name] = _Callback(name, documentation, tuple(labels), fn, kind)

    def unregister_callback(self, name: str) -> None:
        """Stop exposing ``name`` (no error when it was not registered)."""
        self._callbacks.callbacks.pop(name, None)

    # --- observers ---------------------------------------------------------------------

    def on_execution(
        self,
        version: IntegrationVersion | None,
        operation: str,
        status: str,
        error_code: str | None,
        duration_s: float,
    ) -> None:
        """Count one recorded execution (the execution log calls this for every record).
        ``status``: ``succeeded``, ``failed`` or ``pending_approval``."""
        if version is None:
            integration = op_label = UNKNOWN
        else:
            integration = version.slug
            op_label = UNKNOWN if error_code == "unknown_operation" else operation
        outcome = (error_code or "failed") if status == "failed" else status
        key = (integration, op_label, outcome)
        children = self._children.get(key)
        if children is None:
            children = self._children[key] = (
                self.executions.labels(integration, op_label, outcome),
                self.execution_seconds.labels(integration, op_label),
            )
        children[0].inc()
        children[1].observe(duration_s)
        if error_code is None:
            return
        if error_code in RATE_LIMIT_CODES:
            self.rate_limit_refusals.labels(integration, error_code).inc()
        elif error_code == "timeout" and version is not None and version.manifest.type == "sql":
            self.sql_timeouts.labels(integration).inc()

    def on_registry_change(self, slug: str, entry: IntegrationEntry | None) -> None:
        """Count a failed folder load (a registry listener)."""
        if entry is not None and entry.errors:
            self.registry_load_errors.labels(slug).inc()

    def job_failed(self, kind: str, dead: bool) -> None:
        """Count a failed job attempt: a retry, or a move to the dead-letter state
        (``JobQueue.on_failure``). ``kind`` is one the host registered (bounded)."""
        (self.outbox_dead if dead else self.outbox_retries).labels(kind[:64]).inc()

    def egress_refused(self, code: str) -> None:
        """Count one connector HTTP request the host refused or failed (``code``)."""
        self.egress_refusals.labels(code).inc()

    # --- exposition --------------------------------------------------------------------

    def render(self) -> bytes:
        """The text exposition format (``CONTENT_TYPE``) of every series."""
        return generate_latest(self.registry)


def pool_collector(stats: Callable[[], Mapping[str, Any] | None]) -> Collector:
    """A collector of the sandbox pool's counters (``SandboxPool.counters()``: plain data,
    the sandbox imports nothing of the platform), read at scrape time. ``stats()`` returns
    ``None`` while no pool was started."""

    class PoolCollector(Collector):
        def collect(self) -> Iterator[Metric]:
            s = stats() or {"workers": 0, "busy": 0, "waiting": 0, "kills": {}}
            yield GaugeMetricFamily("bollard_sandbox_workers", "Live sandbox worker processes", s["workers"])
            yield GaugeMetricFamily(
                "bollard_sandbox_busy_slots", "Sandbox worker slots running an execution", s["busy"]
            )
            yield GaugeMetricFamily(
                "bollard_sandbox_waiting", "Calls waiting for a free sandbox worker", s["waiting"]
            )
            kills = CounterMetricFamily(
                "bollard_sandbox_kills",
                "Sandbox workers stopped, by reason (idle, recycled, retired, closed, "
                "or the error that ended the worker: timeout, limit_exceeded, connector_error…)",
                labels=("reason",),
            )
            for reason, n in sorted(s["kills"].items()):
                kills.add_metric([reason], n)
            yield kills

    return PoolCollector()


def runtime_metrics(rt: Runtime) -> Metrics:
    """The metrics of ``rt``, wired: the execution log's observer, the registry listener,
    the sandbox pool's counters (only once the pool exists: a scrape never starts it),
    the integrations by status and the approvals by state (:func:`refresh`)."""
    m = Metrics()
    rt.execution_log.observers.append(m.on_execution)
    rt.registry.add_listener(m.on_registry_change)
    m.registry.register(pool_collector(lambda: rt._pool.counters() if rt._pool is not None else None))

    def integrations() -> dict[tuple[str, ...], float]:
        counts: dict[tuple[str, ...], float] = {("ready",): 0.0, ("error",): 0.0}
        for entry in rt.registry.entries():
            counts[("error",) if entry.errors else ("ready",)] += 1
        return counts

    m.register_gauge_callback(
        "bollard_integrations", "Integrations loaded, by status (error: the last load failed)",
        integrations, ("status",),
    )  # fmt: skip
    rt.jobs.on_failure = m.job_failed
    m.register_gauge_callback(
        "bollard_outbox_jobs",
        "Job outbox jobs in the state database by state: queued (due or deferred), running, "
        "dead (shared by every replica; read at each scrape)",
        lambda: {(state,): float(n) for state, n in m.job_counts.items()},
        ("state",),
    )
    m.register_gauge_callback(
        "bollard_approvals",
        "Approvals in the state database by state (shared by every replica; read at each scrape)",
        lambda: {(state,): float(n) for state, n in m.approval_counts.items()},
        ("state",),
    )
    return m


APPROVAL_STATES = ("pending", "approved", "executing", "succeeded", "failed", "rejected", "expired")


async def refresh(rt: Runtime) -> None:
    """Read what lives in the state database before a scrape: approvals by state (one
    ``GROUP BY`` on the approvals table) and the job outbox's counts."""
    from sqlalchemy import func, select

    from bollard.platform.store.tables import approvals

    async with rt.db.connect() as conn:
        rows = (
            await conn.execute(select(approvals.c.status, func.count()).group_by(approvals.c.status))
        ).all()
    counts = dict.fromkeys(APPROVAL_STATES, 0)
    counts.update({str(status): int(n) for status, n in rows})
    rt.metrics.approval_counts = counts
    rt.metrics.job_counts = await rt.jobs.counts()
