"""Host side of one execution on a worker: the message exchange (DESIGN §4.3, §4.4).

:func:`execute` sends a :class:`~bollard.sandbox.job.Job` as an ``execute`` message,
answers each ``http`` message by awaiting the job's
:data:`~bollard.sandbox.job.HttpHandler` (the egress policy lives in the platform),
and turns the worker's ``result`` or ``error`` into an :class:`Outcome`; a failure
the worker does not survive is raised. :func:`death_error` names the error for a
worker that died. Every message is checked by :mod:`bollard.sandbox.protocol`.
"""

from __future__ import annotations

import logging
import signal
from dataclasses import dataclass, field
from typing import Any

from .errors import (
    ConnectorError,
    HttpRequestRefused,
    LimitExceeded,
    SandboxError,
    truncate,
)
from .frames import ProtocolError, frame_head
from .job import FileHandler, HttpHandler, Job
from .limits import MIB, Limits
from .process import WorkerProcess
from .protocol import (
    MAX_REQUEST_BODY_BYTES,
    FileDownload,
    FileStore,
    HttpRequest,
    HttpResponse,
    WorkerFailure,
    file_reference_message,
    http_error_message,
    http_response_message,
    parse_error,
    parse_file_download,
    parse_file_store,
    parse_http_request,
    parse_result,
)

logger = logging.getLogger("bollard.sandbox")

_NO_FILES: dict[str, Any] = {
    "type": "http_error",
    "code": "files_unavailable",
    "message": "this host has no file store (ctx.files is not available)",
}
CPU_SIGNALS = (signal.SIGPROF, signal.SIGXCPU)
_REQUEST_FAILED: dict[str, Any] = {
    "type": "http_error",
    "code": "network_error",
    "message": "the request failed",
}


@dataclass
class Outcome:
    """How an execution the worker survived ended: ``value`` and ``logs`` of a result,
    or ``error``; ``http_requests`` made; ``reusable``: whether the worker may serve
    another execution."""

    value: Any = None
    logs: list[str] = field(default_factory=list)
    http_requests: int = 0
    error: SandboxError | None = None
    reusable: bool = False


def frame_cap(limits: Limits) -> int:
    """Bytes of the biggest frame a worker may send under ``limits``."""
    # Biggest legitimate worker message: a result or a request body, plus the logs
    # (JSON escaping can grow control characters sixfold).
    return max(limits.max_result_bytes, MAX_REQUEST_BODY_BYTES * 4 // 3) + 6 * limits.max_log_bytes + 65536


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


async def execute(worker: WorkerProcess, job: Job) -> Outcome:
    """Run ``job`` once on ``worker`` (its params already plain JSON:
    :meth:`~bollard.sandbox.job.Job.checked`). A failure the worker survives is returned in
    the outcome (the worker stays reusable); one that kills it is raised:
    :class:`LimitExceeded` past ``max_http_requests``, :class:`ConnectorError` for a
    protocol breach (the worker is killed), ``ConnectionError`` when the worker died
    (see :func:`death_error`). The job's ``file_handler`` answers ``ctx.files`` calls
    (each counts as one request against ``max_http_requests``); without one they are
    refused."""
    limits = job.limits
    requests = 0
    codes_sent: set[str] = set()
    cap = frame_cap(limits)
    max_log_chars = limits.max_log_bytes + 200
    try:
        await worker.send(
            {
                "type": "execute",
                "entrypoint": job.entrypoint,
                "operation": job.operation,
                "params": job.params,
                "secrets": job.secrets,
                "cpu_time_ms": limits.cpu_time_ms,
                "max_result_bytes": limits.max_result_bytes,
                "max_log_bytes": limits.max_log_bytes,
                "files": job.file_handler is not None,
            }
        )
        while True:
            message, body = await worker.recv(cap)
            kind = message["type"]
            if kind in ("http", "file_store", "file_download"):
                requests += 1
                if requests > limits.max_http_requests:
                    worker.kill()
                    raise LimitExceeded(
                        "max_http_requests",
                        limits.max_http_requests,
                        f"the connector made more than {limits.max_http_requests} HTTP "
                        f"requests (limit max_http_requests = {limits.max_http_requests})",
                    )
                if kind == "http":
                    reply, body = await answer_http(
                        parse_http_request(message, body), job.http_handler, limits
                    )
                else:
                    reply, body = await answer_file(kind, message, body, job.file_handler), b""
                if reply["type"] == "http_error":
                    codes_sent.add(reply["code"])
                # No drain: a worker that stops reading mid-answer (it failed while
                # receiving) still gets to send its final message.
                worker.pipe.write(frame_head(reply, len(body)), body)
            elif kind == "result":
                value, logs = parse_result(message, max_log_chars)
                worker.executions += 1
                reusable = message.get("discard") is not True
                return Outcome(value, logs, requests, None, reusable)
            elif kind == "error":
                worker.executions += 1
                failure = parse_error(message, max_log_chars)
                error = failure_error(failure, limits, codes_sent)
                # After a MemoryError the worker's heap is suspect: replace it.
                reusable = failure.kind != "memory" and message.get("discard") is not True
                return Outcome(None, failure.logs, requests, error, reusable)
            else:
                raise ProtocolError(f"unexpected {kind!r} message")
    except ProtocolError as exc:
        worker.kill()
        raise ConnectorError(f"the sandbox worker broke the protocol ({exc})") from None


def death_error(code: int, limits: Limits) -> SandboxError:
    """The error for a worker that died during an execution with exit status ``code``
    (negative: killed by that signal): the CPU limit for SIGPROF/SIGXCPU, else a
    :class:`ConnectorError` naming the signal or status."""
    if code < 0 and -code in CPU_SIGNALS:
        return LimitExceeded(
            "cpu_time_ms",
            limits.cpu_time_ms,
            f"the execution exceeded its CPU time limit of {limits.cpu_time_ms} ms",
        )
    if code < 0:
        return ConnectorError(f"the connector's worker process was killed ({_signal_name(-code)})")
    return ConnectorError(f"the connector's worker process exited unexpectedly (status {code})")


def failure_error(failure: WorkerFailure, limits: Limits, codes_sent: set[str]) -> SandboxError:
    """The error for a worker ``error`` message. An ``http`` failure keeps the host's
    code only when the host sent that code in this execution (``codes_sent``)."""
    if failure.kind == "memory":
        return LimitExceeded(
            "memory_bytes",
            limits.memory_bytes,
            f"the execution exceeded its memory limit of {limits.memory_bytes // MIB} MiB "
            f"({limits.memory_bytes} bytes)",
            logs=failure.logs,
        )
    if failure.kind == "result_too_large":
        return LimitExceeded(
            "max_result_bytes",
            limits.max_result_bytes,
            f"the result is larger than the limit of {limits.max_result_bytes} bytes (max_result_bytes)",
            logs=failure.logs,
        )
    if failure.kind == "http" and failure.code in codes_sent:
        return HttpRequestRefused(failure.code, truncate(failure.message), logs=failure.logs)
    return ConnectorError(truncate(failure.message), line=failure.line, logs=failure.logs)


async def answer_file(
    kind: str, message: dict[str, Any], body: bytes, handler: FileHandler | None
) -> dict[str, Any]:
    """The reply to a ``file_store`` / ``file_download`` message: ``file_reference``,
    or ``http_error`` for a refusal or a failing handler (nothing is raised but the
    ``ProtocolError`` of a malformed message)."""
    request: FileStore | FileDownload
    request = parse_file_store(message, body) if kind == "file_store" else parse_file_download(message)
    if handler is None:
        return _NO_FILES
    try:
        if isinstance(request, FileStore):
            reference = await handler.store(request)
        else:
            reference = await handler.download(request)
        return file_reference_message(reference)
    except HttpRequestRefused as exc:
        return http_error_message(exc)
    except Exception:
        logger.exception("the file handler failed on a sandbox request")
        return {"type": "http_error", "code": "file_error", "message": "the file could not be stored"}


async def answer_http(
    request: HttpRequest, handler: HttpHandler, limits: Limits
) -> tuple[dict[str, Any], bytes]:
    """Await the host's handler; the reply message for the worker and its body. A
    refusal, a failing handler, a wrong return type or a body over
    ``max_response_bytes`` becomes an ``http_error`` reply (nothing is raised)."""
    try:
        response = await handler(request)
    except HttpRequestRefused as exc:
        return http_error_message(exc), b""
    except Exception:
        logger.exception("the HTTP handler failed on a sandbox request")
        return _REQUEST_FAILED, b""
    if type(response) is not HttpResponse or type(response.body) is not bytes:
        logger.error("the HTTP handler returned %r, not an HttpResponse", type(response))
        return _REQUEST_FAILED, b""
    if len(response.body) > limits.max_response_bytes:
        return {
            "type": "http_error",
            "code": "limit_exceeded",
            "message": f"the response body is larger than the limit of "
            f"{limits.max_response_bytes} bytes (max_response_bytes)",
        }, b""
    return http_response_message(response), response.body
