"""One rule for every call's limits (DESIGN §4.4 for REST connectors, §5 for SQL).

Each limit starts at its default, is overridden by the manifest (``connectionConfig`` /
``sqlConnectionConfig.security``, then the operation), may be *lowered* (never raised)
by the caller's ``timeoutMs``, and is finally capped by the operator's ceiling
(``BOLLARD_MAX_*``). :func:`lowered` is that rule for one value; :class:`LimitResolver`
applies it to the sandbox :class:`~bollard.sandbox.limits.Limits` of a REST call and to
the ``security`` of a SQL call, cached per (version, operation, timeoutMs).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from bollard.platform.errors import ExecutionError
from bollard.platform.manifest import Operation
from bollard.platform.packages import IntegrationVersion
from bollard.platform.settings import Settings

if TYPE_CHECKING:
    from bollard.sandbox.limits import Limits

MAX_CACHED = 4096
SQL_DEFAULT_MAX_RESULT_ROWS = 1000  # rows (DESIGN §5)
SQL_DEFAULT_QUERY_TIMEOUT_MS = 30_000
SQL_DEFAULT_MAX_RESULT_BYTES = 5 * 1024 * 1024  # bytes (DESIGN §5)


def check_timeout_ms(timeout_ms: Any) -> int | None:
    """The caller's ``timeoutMs`` (ms) when valid; raises ``invalid_request`` naming it."""
    if timeout_ms is None:
        return None
    if type(timeout_ms) is not int or timeout_ms <= 0:
        raise ExecutionError(
            "invalid_request", f"timeoutMs must be a positive integer (milliseconds), got {timeout_ms!r}"
        )
    return timeout_ms


def lowered(value: int, caller: int | None, ceiling: int) -> int:
    """The rule: the caller's value may only lower ``value``; the operator ceiling caps it."""
    if caller is not None:
        value = min(value, caller)
    return min(value, ceiling)


class LimitResolver:
    """Resolves the limits of calls under one set of operator ceilings (``Settings``)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._sandbox: dict[tuple[str, str | None, int | None], Limits] = {}

    def ceiling(self) -> Limits:
        """The operator ceilings as sandbox limits."""
        from bollard.sandbox.limits import MIB, Limits  # lazy: the CLI starts without the sandbox

        s = self.settings
        return Limits(
            wall_time_ms=s.max_wall_time_ms,
            cpu_time_ms=s.max_cpu_time_ms,
            memory_bytes=s.max_memory_mb * MIB,
            max_http_requests=s.max_http_requests,
            max_response_bytes=s.max_response_bytes,
            max_result_bytes=s.max_result_bytes,
        )

    def sandbox(self, version: IntegrationVersion, op: Operation | None, timeout_ms: Any) -> Limits:
        """Limits of one connector run: defaults ← ``connectionConfig.timeout`` ← the
        operation's ``limits``/``timeoutMs`` ← the caller's ``timeoutMs`` (only lowers),
        capped by the ceilings. ``op`` is ``None`` for Test connection.

        Raises :class:`ExecutionError` ``invalid_request`` for a bad ``timeoutMs`` and
        ``integration_error`` for a manifest limit that is not a positive integer.
        """
        caller = check_timeout_ms(timeout_ms)
        key = (version.content_hash, op.name if op is not None else None, caller)
        cached = self._sandbox.get(key)
        if cached is not None:
            return cached
        from bollard.sandbox.limits import DEFAULT_LIMITS, resolve_limits  # lazy: see ceiling()

        override: dict[str, Any] = {}
        cc = version.manifest.connection_config
        if cc is not None and cc.timeout:
            override["timeoutMs"] = cc.timeout
        if op is not None:
            if op.limits is not None:
                override.update(op.limits.model_dump(by_alias=True, exclude_none=True))
            if op.timeout_ms:
                override["timeoutMs"] = op.timeout_ms
        ceiling = self.ceiling()
        try:
            limits = resolve_limits(DEFAULT_LIMITS, override, ceiling)
        except ValueError as e:
            raise ExecutionError("integration_error", f"integration '{version.slug}': {e}") from None
        wall = lowered(limits.wall_time_ms, caller, ceiling.wall_time_ms)
        if wall != limits.wall_time_ms:
            limits = dataclasses.replace(limits, wall_time_ms=wall)
        if len(self._sandbox) >= MAX_CACHED:  # versions replaced long ago; rebuilt on demand
            self._sandbox.clear()
        self._sandbox[key] = limits
        return limits

    def sql_security(self, version: IntegrationVersion, timeout_ms: Any) -> dict[str, Any]:
        """``sqlConnectionConfig.security`` of one SQL call (camelCase keys):
        ``maxResultRows`` (rows) capped by ``BOLLARD_MAX_RESULT_ROWS``, ``maxResultBytes``
        (bytes, default 5 MiB) capped by ``BOLLARD_MAX_RESULT_BYTES``, ``queryTimeoutMs``
        (ms) lowered by the caller's ``timeoutMs`` and capped by
        ``BOLLARD_MAX_QUERY_TIMEOUT_MS``; other keys as the manifest has them."""
        caller = check_timeout_ms(timeout_ms)
        cfg = version.manifest.sql_connection_config
        sec = cfg.security.model_dump(by_alias=True, exclude_none=True) if cfg else {}
        s = self.settings
        sec["maxResultRows"] = lowered(
            sec.get("maxResultRows", SQL_DEFAULT_MAX_RESULT_ROWS), None, s.max_result_rows
        )
        sec["maxResultBytes"] = lowered(
            sec.get("maxResultBytes", SQL_DEFAULT_MAX_RESULT_BYTES), None, s.max_result_bytes
        )
        sec["queryTimeoutMs"] = lowered(
            sec.get("queryTimeoutMs", SQL_DEFAULT_QUERY_TIMEOUT_MS), caller, s.max_query_timeout_ms
        )
        return sec
