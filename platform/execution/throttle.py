"""What a call may ask for before it runs: the retries it may make, the rate limits and
the concurrency cap of its integration and operation (DESIGN §2 extensions, §8, §12)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from bollard.platform.errors import ExecutionError
from bollard.platform.retry import MAX_RETRIES

if TYPE_CHECKING:
    from bollard.platform.invocation import Call
    from bollard.platform.manifest import Operation
    from bollard.platform.packages import IntegrationVersion
    from bollard.platform.ratelimit import Limiter


def check_retries(op: Operation, retries: Any) -> int:
    """``retries`` (0–5) apply to reads only: a write is never sent twice (DESIGN §8).

    Raises ``invalid_request`` otherwise."""
    if type(retries) is not int or not 0 <= retries <= MAX_RETRIES:
        raise ExecutionError(
            "invalid_request", f"retries must be an integer between 0 and {MAX_RETRIES}, got {retries!r}"
        )
    if retries and (op.operation_type != "read" or op.needs_approval):
        raise ExecutionError(
            "invalid_request",
            f"retries applies to read operations only; '{op.name}' is a write "
            "(a write is never sent twice): call it without retries",
        )
    return retries


async def check_rate(limiter: Limiter, version: IntegrationVersion, op: Operation | None) -> None:
    """Raise ``rate_limited`` (429, ``Retry-After``) when the integration's or the
    operation's ``rateLimit`` is used up (DESIGN §2 extensions)."""
    m = version.manifest
    checks = [(version.slug, m.connection_config.rate_limit if m.connection_config else None)]
    if op is not None:
        checks.append((f"{version.slug}/{op.name}", op.rate_limit))
    for key, limit in checks:
        if limit is None:
            continue
        wait = await limiter.check_rate(key, limit)
        if wait:
            what = f"operation {op.name}" if op is not None and "/" in key else f"integration {version.slug}"
            raise ExecutionError(
                "rate_limited",
                f"rate limit of {what} reached ({limit.requests} per {limit.per_seconds:g} s); "
                f"retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )


async def run_limited(
    limiter: Limiter, call: Call, run: Callable[[Call], Awaitable[dict[str, Any]]]
) -> dict[str, Any]:
    """Apply the rate limits and the concurrency cap, then ``run(call)``; raises
    ``rate_limited`` or ``too_many_concurrent`` (429, ``Retry-After``) when over."""
    op = call.op
    await check_rate(limiter, call.version, op)
    if op.max_concurrency is None:
        return await run(call)
    lease = await limiter.acquire(f"{call.version.slug}/{op.name}", op.max_concurrency)
    if lease is None:
        raise ExecutionError(
            "too_many_concurrent",
            f"operation '{op.name}' already runs {op.max_concurrency} time(s) at once "
            "(maxConcurrency); retry shortly",
            headers={"Retry-After": "1"},
        )
    try:
        return await run(call)
    finally:
        await limiter.release(lease)
