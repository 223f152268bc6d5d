"""The shapes of one call: what a front asks (:class:`Invocation`), what a runner gets
(:class:`Call`), and what the front answers (:class:`Outcome`, the envelope of DESIGN §8)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bollard.platform.credentials import DEFAULT_CREDENTIAL_ID
from bollard.platform.manifest import Operation
from bollard.platform.packages import IntegrationVersion


@dataclass
class Invocation:
    """One request to run an operation, as a front (API, CLI, MCP, tools, UI) received it.

    ``caller`` says which front made it (``api``, ``cli``, ``mcp``, ``tools``, ``ui``,
    ``approval``; recorded in the execution log, never used to decide anything);
    ``token_id``/``role`` who; ``timeout_ms`` lowers the wall time (up to the operator
    ceiling); ``retries`` retries a read's failed requests (DESIGN §8).
    """

    slug: str
    operation: str
    params: dict[str, Any] = field(default_factory=dict)
    credential_id: str = DEFAULT_CREDENTIAL_ID
    use_mock: bool = False
    timeout_ms: int | None = None
    caller: str = "api"
    token_id: str | None = None
    role: str | None = None
    approval_id: str | None = None
    retries: int = 0


@dataclass(frozen=True)
class Call:
    """One resolved, validated call on its way to a runner (sandbox or SQL).

    ``version`` and ``op`` are what runs; ``params`` are validated with defaults filled;
    ``values`` the decrypted credential values of ``credential_id`` (never logged);
    ``timeout_ms`` the caller's wall-time request (ms, only lowers); ``retries`` how
    often failed requests may be retried (0 for writes).
    """

    version: IntegrationVersion
    op: Operation
    params: dict[str, Any]
    values: dict[str, str]
    credential_id: str = DEFAULT_CREDENTIAL_ID
    timeout_ms: int | None = None
    retries: int = 0


@dataclass
class Outcome:
    """What the caller gets: an HTTP-like ``status`` (200, 202, 4xx/5xx) and the ``body``
    (the result envelope, or the pending approval for 202). ``text``: the body already
    encoded as JSON, for a big result (``result_json.py``); answer it instead of encoding
    ``body`` again."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] | None = None
    text: str | None = None

    @property
    def ok(self) -> bool:
        return self.status < 300


def success_body(version: IntegrationVersion, op_name: str, data: Any, **extra: Any) -> dict[str, Any]:
    """The success envelope of DESIGN §8 (``count`` when ``data`` is a list)."""
    body: dict[str, Any] = {
        "success": True,
        "integration": version.slug,
        "operation": op_name,
        "version": version.version,
        "data": data,
    }
    if isinstance(data, list):
        body["count"] = len(data)
    body.update(extra)
    return body
