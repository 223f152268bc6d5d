"""OpenTelemetry spans around a call: invoke → approval → sandbox / egress or SQL.

Spans (all ``SpanKind.INTERNAL`` except ``bollard.egress.request``, a ``CLIENT``):

- ``bollard.invoke`` / ``bollard.run_approved`` / ``bollard.connection_test``: one per
  call of the execution service; attributes ``bollard.integration``,
  ``bollard.operation``, ``bollard.caller``, ``bollard.request_id``, then
  ``bollard.outcome`` (``succeeded``, ``pending_approval``, ``failed``),
  ``http.response.status_code`` and ``bollard.error_code``;
- ``bollard.approval.request``: holding a write for a person (``bollard.approval_id``);
- ``bollard.sandbox.run``: the connector's run in a worker;
- ``bollard.egress.request``: each ``ctx.http`` request (``http.request.method``,
  ``server.address``: the host only, never the path or query;
  ``http.response.status_code`` or ``bollard.error_code``);
- ``bollard.sql.run``: the SQL runner (``db.system.name``, ``bollard.rows``,
  ``bollard.truncated``).

No parameter values, credential values, URLs' paths or queries, SQL text or exception
messages go into attributes (any of them may carry a secret); exceptions are not
recorded on spans, only the error code.

Only the ``opentelemetry-api`` is used on the call path, and only once a provider is in
use (:func:`configure`, :func:`use_provider`, or an SDK provider the embedding program
installed globally before the runtime started); until then :func:`span` is a shared
null context and no attribute is built (the API's own no-op span costs several µs).
:func:`configure` installs the SDK with an OTLP/HTTP
exporter when the operator names an endpoint (``BOLLARD_OTLP_ENDPOINT`` or the standard
``OTEL_EXPORTER_OTLP_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``); the SDK is
imported only then.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, ProxyTracerProvider, Span, SpanKind, Status, StatusCode

from bollard.platform import request_id

if TYPE_CHECKING:
    from bollard.platform.invocation import Invocation
    from bollard.platform.settings import Settings

log = logging.getLogger("bollard.tracing")

INSTRUMENTATION = "bollard"
_MAX_ATTR_CHARS = 128
_tracer: trace.Tracer = trace.get_tracer(INSTRUMENTATION)  # a proxy: follows the global provider
_provider: Any = None  # the SDK provider configure() installed (flushed by shutdown())
_global_set = False
_active = False  # whether spans are recorded at all (else span() is a null context)
_NULL: contextlib.AbstractContextManager[Span] = contextlib.nullcontext(INVALID_SPAN)


def use_provider(provider: trace.TracerProvider | None) -> None:
    """Send Bollard's spans to ``provider`` (``None``: back to the global provider). Tests
    use it with the SDK's in-memory exporter without touching the process-wide provider."""
    global _tracer, _active
    _tracer = (
        provider.get_tracer(INSTRUMENTATION) if provider is not None else trace.get_tracer(INSTRUMENTATION)
    )
    _active = provider is not None or not isinstance(trace.get_tracer_provider(), ProxyTracerProvider)


def active() -> bool:
    """Whether spans are recorded (a provider is in use)."""
    return _active


def _clip(value: str) -> str:
    return value if len(value) <= _MAX_ATTR_CHARS else value[: _MAX_ATTR_CHARS - 1] + "…"


def span(
    name: str, attributes: Mapping[str, Any] | None = None, *, kind: SpanKind = SpanKind.INTERNAL
) -> contextlib.AbstractContextManager[Span]:
    """A span that is the current one inside the block (``with span(...) as s``). An
    exception marks it as an error with the exception's class name only (its text may
    carry a secret). A shared null context while no provider is in use."""
    if not _active:
        return _NULL
    return _recording_span(name, attributes, kind)


@contextmanager
def _recording_span(name: str, attributes: Mapping[str, Any] | None, kind: SpanKind) -> Iterator[Span]:
    with _tracer.start_as_current_span(
        name, kind=kind, attributes=attributes, record_exception=False, set_status_on_exception=False
    ) as s:
        try:
            yield s
        except BaseException as e:
            if s.is_recording():
                code = getattr(e, "code", None)
                if isinstance(code, str):
                    s.set_attribute("bollard.error_code", code)
                s.set_status(Status(StatusCode.ERROR, type(e).__name__))
            raise


def attach_incoming(headers: Iterable[tuple[bytes, bytes]]) -> object | None:
    """Make the W3C trace context of incoming ASGI ``headers`` (``traceparent``,
    ``tracestate``) current, so this request's spans join the caller's trace; returns the
    token for :func:`detach`, or ``None`` when the request carries none."""
    carrier = {
        k.decode("latin-1"): v.decode("latin-1") for k, v in headers if k in (b"traceparent", b"tracestate")
    }
    if "traceparent" not in carrier:
        return None
    from opentelemetry import context, propagate

    return context.attach(propagate.extract(carrier))


def detach(token: object) -> None:
    """Undo :func:`attach_incoming`."""
    from opentelemetry import context

    context.detach(token)  # type: ignore[arg-type]


def call_attributes(inv: Invocation) -> dict[str, Any] | None:
    """The attributes of a call's span (no parameter or credential values); ``None``
    while no span is recorded."""
    if not _active:
        return None
    attrs: dict[str, Any] = {
        "bollard.integration": _clip(inv.slug),
        "bollard.operation": _clip(inv.operation),
        "bollard.caller": _clip(inv.caller),
    }
    rid = request_id.current()
    if rid is not None:
        attrs["bollard.request_id"] = rid
    if inv.approval_id is not None:
        attrs["bollard.approval_id"] = inv.approval_id
    return attrs


def end_call(s: Span, status: int, body: Mapping[str, Any]) -> None:
    """Record a call's outcome on its span: the HTTP status and the error code."""
    if not s.is_recording():
        return
    s.set_attribute("http.response.status_code", status)
    if status == 202:
        s.set_attribute("bollard.outcome", "pending_approval")
        approval = body.get("approvalId")
        if isinstance(approval, str):
            s.set_attribute("bollard.approval_id", approval)
        return
    error = body.get("error")
    if status < 400 and not isinstance(error, Mapping):
        s.set_attribute("bollard.outcome", "succeeded")
        return
    s.set_attribute("bollard.outcome", "failed")
    if isinstance(error, Mapping) and isinstance(error.get("code"), str):
        s.set_attribute("bollard.error_code", error["code"])
    s.set_status(Status(StatusCode.ERROR))


def endpoint(settings: Settings) -> str | None:
    """The OTLP endpoint the operator configured, or ``None`` (no export)."""
    return (
        settings.otlp_endpoint
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or None
    )


def configure(settings: Settings) -> bool:
    """Install the OpenTelemetry SDK with a batching OTLP/HTTP span exporter when an
    endpoint is configured (once per process; later calls do nothing); returns whether
    spans are exported. ``BOLLARD_OTLP_ENDPOINT`` is the base URL of the collector
    (``http://collector:4318``: spans go to ``/v1/traces``); the standard ``OTEL_*``
    variables (headers, timeout, ``OTEL_SERVICE_NAME``) apply as the SDK reads them."""
    global _provider
    if _provider is not None:
        return True
    url = endpoint(settings)
    if url is None:
        use_provider(None)  # a global SDK provider installed by an embedding program, if any
        return False
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter  # lazy: SDK
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if settings.otlp_endpoint:
        exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint.rstrip("/") + "/v1/traces")
    else:
        exporter = OTLPSpanExporter()  # the SDK reads OTEL_EXPORTER_OTLP_*ENDPOINT itself
    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME") or "bollard"})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    global _global_set
    if not _global_set:  # the API allows one global provider per process
        trace.set_tracer_provider(provider)
        _global_set = True
    use_provider(provider)
    _provider = provider
    log.info("tracing: exporting spans over OTLP/HTTP (%s)", urlsplit(url).netloc.rpartition("@")[2])
    return True


def shutdown() -> None:
    """Flush and stop the exporter :func:`configure` installed (at process exit)."""
    global _provider
    if _provider is not None:
        _provider.shutdown()
        _provider = None
        use_provider(None)
