"""One connector run through a real sandbox pool, as the sandbox tests make it.

``tests/sandbox`` tests wrap :func:`run_source` once with their own defaults (a key per
source or a fixed key, the operation, the limits, the file name) in a ``run(pool,
egress, source, **overrides)`` of their own.
"""

from __future__ import annotations

import textwrap
from typing import Any

from bollard.sandbox.job import Job, RunResult
from bollard.sandbox.limits import Limits
from bollard.sandbox.policy import source_hash
from bollard.sandbox.pool import SandboxPool


def source_key(prefix: str, source: str) -> str:
    """``"<prefix>:<12 hex digits of the source's SHA-256>"``: a pool key per distinct
    source, so each source gets workers of its own."""
    return f"{prefix}:{source_hash(source)[:12]}"


async def run_source(
    pool: SandboxPool,
    egress: Any,
    source: str,
    *,
    limits: Limits,
    key: str | None = None,
    key_prefix: str = "test",
    operation: str = "op",
    entrypoint: str = "execute",
    params: dict[str, Any] | None = None,
    secrets: dict[str, str] | None = None,
    filename: str = "connector.py",
    dedent: bool = False,
) -> RunResult:
    """``pool.run`` of ``source`` (``textwrap.dedent`` first when ``dedent``) with
    ``egress`` as the HTTP handler, no parameters or secrets unless given, under ``key``
    (default :func:`source_key` of ``key_prefix``). Raises what ``pool.run`` raises
    (``SandboxError`` and its kinds)."""
    source = textwrap.dedent(source) if dedent else source
    return await pool.run(
        Job(
            key=key or source_key(key_prefix, source),
            source=source,
            entrypoint=entrypoint,
            operation=operation,
            params=params or {},
            secrets=secrets or {},
            http_handler=egress,
            limits=limits,
            filename=filename,
        )
    )
