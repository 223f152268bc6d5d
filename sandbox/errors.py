"""Errors raised by the sandbox to the host.

Every run-time failure is a :class:`SandboxError` whose ``code`` is one of the
result-envelope error codes of DESIGN §8, so the host can put ``code`` and
``message`` straight into ``{"error": {"code", "message"}}``:

- ``timeout``: the wall-time limit passed (:class:`ExecutionTimeout`);
- ``limit_exceeded``: CPU time, memory, HTTP requests, response or result size
  (:class:`LimitExceeded`, ``limit`` names the limit);
- ``connector_error``: the connector raised, returned something that is not JSON,
  failed to compile or crashed its worker (:class:`ConnectorError`);
- the code of an HTTP request the host refused or failed, e.g. ``host_not_allowed``
  (:class:`HttpRequestRefused`, the one class for that on both sides of the pipe);
- ``internal_error``: the sandbox itself failed (:class:`SandboxUnavailable`).

Messages never carry host tracebacks or secrets: they are built from the limit
values, the connector's own exception text (truncated) or the host's refusal
message.
"""

from __future__ import annotations

MAX_MESSAGE_CHARS = 2000


def truncate(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """Return ``text`` cut to ``limit`` characters, marking the cut with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


class SandboxError(Exception):
    """Base class: ``code`` (DESIGN §8 error code), ``message`` (safe to show),
    ``logs`` (the connector output collected before the failure, possibly empty)."""

    code = "connector_error"

    def __init__(self, message: str, *, logs: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.logs: list[str] = logs if logs is not None else []


class ExecutionTimeout(SandboxError):
    """The execution (including the wait for a free worker) passed its wall time."""

    code = "timeout"


class LimitExceeded(SandboxError):
    """A resource limit was passed; ``limit`` is its name (``cpu_time_ms``,
    ``memory_bytes``, ``max_http_requests``, ``max_response_bytes``,
    ``max_result_bytes``) and ``value`` its configured value."""

    code = "limit_exceeded"

    def __init__(self, limit: str, value: int, message: str, *, logs: list[str] | None = None) -> None:
        super().__init__(message, logs=logs)
        self.limit = limit
        self.value = value


class ConnectorError(SandboxError):
    """Connector code failed: an exception it raised (``message`` is its text),
    a result that is not JSON, or a crash of its worker. ``line`` is the line in
    the connector file where the exception was raised, when known."""

    code = "connector_error"

    def __init__(self, message: str, *, line: int | None = None, logs: list[str] | None = None) -> None:
        super().__init__(message, logs=logs)
        self.line = line


class ConnectorCompileError(ConnectorError):
    """The connector source was refused at load (DESIGN §3): ``errors`` lists one
    message per problem, each starting with ``Line <n>:``."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("connector failed to load: " + "; ".join(errors))
        self.errors = errors


class SandboxUnavailable(SandboxError):
    """The sandbox itself failed: a worker could not start, or the pool was closed.
    Not the connector's fault; code ``internal_error``."""

    code = "internal_error"


class HttpRequestRefused(SandboxError):
    """The host refused or failed one ``ctx.http`` request (DESIGN §4, §8).

    One class on both sides of the worker pipe: the host's egress code raises it
    (:mod:`bollard.platform.egress`), the pool sends it to the worker as an
    ``http_error`` frame, the worker raises it inside connector code (which may catch
    it, e.g. ``except Exception as e: e.code``; connectors can read only ``code`` and
    ``args``), and when the connector does not catch it the pool returns it as the
    execution's error. ``code`` is the envelope error code (``host_not_allowed``,
    ``limit_exceeded``, ``network_error``, ``timeout``, ``connector_error``);
    ``message`` is safe to show to the connector and the caller (no secrets).
    """

    def __init__(self, code: str, message: str, *, logs: list[str] | None = None) -> None:
        super().__init__(message, logs=logs)
        self.code = code
