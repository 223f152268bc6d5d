"""Per-execution resource limits (DESIGN §4.4).

Each limit has a default (:data:`DEFAULT_LIMITS`), may be overridden by the
manifest (camelCase keys, :data:`OVERRIDE_KEYS`) and is capped by the operator's
ceiling: :func:`resolve_limits` does that merge.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MIB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Limits for one execution of connector code.

    - ``wall_time_ms``: wall-clock time from the call to the result, including the
      wait for a free worker (ms); past it the worker is killed, error ``timeout``.
    - ``cpu_time_ms``: CPU time of the execution (ms; enforced with ``RLIMIT_CPU``,
      whole seconds, rounded up); error ``limit_exceeded``.
    - ``memory_bytes``: address space the execution may add on top of the worker's
      baseline (bytes; ``RLIMIT_AS``); error ``limit_exceeded``.
    - ``max_http_requests``: ``ctx.http`` calls per execution; the next one kills the
      worker, error ``limit_exceeded``.
    - ``max_response_bytes``: body size of one HTTP response (bytes); a bigger one is
      refused with a catchable ``limit_exceeded`` error inside the connector.
    - ``max_result_bytes``: size of the JSON-encoded result (bytes).
    - ``max_log_bytes``: total size of ``print``/``ctx.log`` output kept (bytes);
      output past it is dropped and a marker line added.
    """

    wall_time_ms: int = 30_000
    cpu_time_ms: int = 10_000
    memory_bytes: int = 256 * MIB
    max_http_requests: int = 50
    max_response_bytes: int = 10 * MIB
    max_result_bytes: int = 5 * MIB
    max_log_bytes: int = 64 * 1024

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if type(value) is not int or value <= 0:
                raise ValueError(f"{f.name} must be a positive integer, got {value!r}")


DEFAULT_LIMITS = Limits()

# Manifest key -> (Limits field, multiplier to the field's unit).
OVERRIDE_KEYS: dict[str, tuple[str, int]] = {
    "timeoutMs": ("wall_time_ms", 1),
    "cpuTimeMs": ("cpu_time_ms", 1),
    "memoryMb": ("memory_bytes", MIB),
    "maxHttpRequests": ("max_http_requests", 1),
    "maxResponseBytes": ("max_response_bytes", 1),
    "maxResultBytes": ("max_result_bytes", 1),
    "maxLogBytes": ("max_log_bytes", 1),
}


def resolve_limits(
    defaults: Limits = DEFAULT_LIMITS,
    override: Mapping[str, Any] | None = None,
    ceiling: Limits | None = None,
) -> Limits:
    """Merge ``defaults`` <- ``override`` <- ``ceiling`` into the limits of one call.

    ``override`` uses the manifest's camelCase keys: ``timeoutMs`` (ms), ``cpuTimeMs``
    (ms), ``memoryMb`` (MiB), ``maxHttpRequests``, ``maxResponseBytes`` (bytes),
    ``maxResultBytes`` (bytes), ``maxLogBytes`` (bytes). Other keys are ignored, so an
    operation or ``connectionConfig`` object can be passed as it is. Every resolved
    value is then capped at the operator's ``ceiling`` (when given).

    Raises ``ValueError`` naming the key when an override value is not a positive
    integer (``bool`` is refused).
    """
    values = dataclasses.asdict(defaults)
    for key, (field_name, unit) in OVERRIDE_KEYS.items():
        if override is None or key not in override:
            continue
        raw = override[key]
        if type(raw) is not int or raw <= 0:
            raise ValueError(f"{key} must be a positive integer, got {raw!r}")
        values[field_name] = raw * unit
    if ceiling is not None:
        for field_name, cap in dataclasses.asdict(ceiling).items():
            values[field_name] = min(values[field_name], cap)
    return Limits(**values)
