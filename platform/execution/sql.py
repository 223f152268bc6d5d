"""A SQL call: through the SQL runner (``platform/sql/``) with the operator's caps, retried
on connection failures for reads (``retry.py``), as the success envelope (DESIGN §8)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bollard.platform import tracing
from bollard.platform.errors import SqlError
from bollard.platform.invocation import success_body
from bollard.platform.retry import backoff, with_retries

if TYPE_CHECKING:
    from bollard.platform.invocation import Call
    from bollard.platform.limits import LimitResolver
    from bollard.platform.runtime import Runtime


async def run_sql(
    runtime: Runtime, limits: LimitResolver, call: Call, on_retry: Callable[[], None]
) -> dict[str, Any]:
    """Run ``call``'s query; return the envelope with ``truncated``, ``truncatedReason``
    and ``rowsAffected`` as the runner reports them. ``on_retry`` is called per retry.
    Raises :class:`SqlError` with the failure's code."""
    sql = runtime.sql

    def should_retry(_: object, error: BaseException | None, attempt: int) -> float | None:
        connection_failed = isinstance(error, SqlError) and error.code == "connection_failed"
        return backoff(attempt) if connection_failed else None

    conf = call.version.manifest.sql_connection_config
    with tracing.span("bollard.sql.run", {"db.system.name": conf.engine if conf else "sql"}) as span:
        res = await with_retries(
            lambda: sql.run(call, limits.sql_security(call.version, call.timeout_ms)),
            retries=call.retries,
            should_retry=should_retry,
            on_retry=on_retry,
        )
        span.set_attribute("bollard.rows", len(res.rows) if isinstance(res.rows, list) else 0)
        span.set_attribute("bollard.truncated", bool(res.truncated))
    body = success_body(call.version, call.op.name, res.rows, truncated=res.truncated)
    if res.truncated:
        reason = res.truncated_reason or "rows"
        runtime.metrics.sql_truncations.labels(call.version.slug, reason).inc()
    if res.truncated_reason is not None:
        body["truncatedReason"] = res.truncated_reason
    if res.rows_affected is not None:
        body["rowsAffected"] = res.rows_affected
    return body
