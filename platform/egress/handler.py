"""The sandbox's HTTP callback for one execution (DESIGN §4.3).

Every ``ctx.http`` request of the execution goes through :func:`send` with the egress
policy of the integration version, the execution's response budget and what is left of
its wall time. With ``retries`` (reads only, DESIGN §8) a request that failed with a
network error or was answered 429 or 5xx is sent again after a backoff (or the
upstream's ``Retry-After``), never past the execution's deadline (``retry.py``).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import urlsplit

from opentelemetry.trace import SpanKind

from bollard.platform import tracing
from bollard.platform.retry import backoff, retry_after, with_retries
from bollard.sandbox.errors import HttpRequestRefused
from bollard.sandbox.protocol import HttpRequest, HttpResponse

from .policy import EgressPolicy
from .sender import EgressClient, send

HttpHandler = Callable[[HttpRequest], Awaitable[HttpResponse]]
TRANSIENT_CODES = ("network_error", "timeout")


def should_retry(response: HttpResponse | None, error: BaseException | None, attempt: int) -> float | None:
    """Seconds to wait before sending again, or ``None``: a refusal other than a network
    error or timeout is final; a response is retried only when it is 429 or 5xx."""
    if error is not None:
        transient = isinstance(error, HttpRequestRefused) and error.code in TRANSIENT_CODES
        return backoff(attempt) if transient else None
    assert response is not None
    if response.status == 429 or response.status >= 500:
        return retry_after(response.headers.get("retry-after")) or backoff(attempt)
    return None


def sandbox_http_handler(
    client: EgressClient,
    policy: EgressPolicy,
    *,
    wall_time_ms: int,
    max_response_bytes: int,
    retries: int = 0,
    secrets: Sequence[str] = (),
    on_retry: Callable[[], None] | None = None,
    on_refusal: Callable[[str], None] | None = None,
) -> HttpHandler:
    """The callback for one execution. ``wall_time_ms`` (ms) starts now; every request
    gets what is left of it (at least 50 ms). ``secrets``: the call's secret values (a
    redirect to another origin drops every header holding one). ``on_retry`` is called
    before each retry, ``on_refusal(code)`` for each request that ends refused or failed
    (metrics). Each request is a ``bollard.egress.request`` span (``tracing.py``).
    Raises :class:`HttpRequestRefused` as :func:`send` does, ``timeout`` when no time is
    left to retry."""
    deadline = time.monotonic() + wall_time_ms / 1000

    async def send_once(request: HttpRequest) -> HttpResponse:
        remaining = max(0.05, deadline - time.monotonic())
        return await send(
            client,
            policy,
            request,
            max_response_bytes=max_response_bytes,
            timeout_s=remaining,
            secrets=secrets,
        )

    def out_of_time() -> BaseException:
        return HttpRequestRefused("timeout", "no time left to retry the request")

    async def send_request(request: HttpRequest) -> HttpResponse:
        if not retries:
            return await send_once(request)
        return await with_retries(
            lambda: send_once(request),
            retries=retries,
            should_retry=should_retry,
            deadline=deadline,
            out_of_time=out_of_time,
            on_retry=on_retry,
        )

    async def handler(request: HttpRequest) -> HttpResponse:
        attrs = (
            {"http.request.method": request.method, "server.address": _host(request.url)}
            if tracing.active()
            else None
        )
        with tracing.span("bollard.egress.request", attrs, kind=SpanKind.CLIENT) as span:
            try:
                response = await send_request(request)
            except HttpRequestRefused as e:
                if on_refusal is not None:
                    on_refusal(e.code)
                raise
            span.set_attribute("http.response.status_code", response.status)
            return response

    return handler


def _host(url: str) -> str:
    """The host of ``url`` for a span (never its user info, path or query)."""
    try:
        return (urlsplit(url).hostname or "")[:253]
    except ValueError:
        return ""
