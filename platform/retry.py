"""One retry loop for every call that may be retried (DESIGN §8: ``retries``, reads only).

REST connectors' HTTP requests (network errors, 429, 5xx) and SQL reads (connection
failures) both retry through :func:`with_retries`: exponential backoff with full jitter,
``Retry-After`` honoured when the upstream sends one, never past the call's deadline.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TypeVar

T = TypeVar("T")

MAX_RETRIES = 5

# ``should_retry(result, error, attempt)`` → seconds to wait before the next attempt,
# or ``None`` to stop (return the result / raise the error).
RetryDecision = Callable[[T | None, BaseException | None, int], float | None]


def backoff(attempt: int, base_s: float = 0.1, cap_s: float = 5.0) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base·2^attempt)] s (+10 ms)."""
    return random.uniform(0, min(cap_s, base_s * (2**attempt))) + 0.01


def retry_after(value: str | None, cap_s: float = 10.0) -> float | None:
    """Seconds from a ``Retry-After`` header, capped at ``cap_s``: delta-seconds or an
    HTTP-date (RFC 9110 §10.2.3; a date in the past is 0); ``None`` when absent or invalid."""
    if value is None:
        return None
    text = value.strip()
    try:
        return min(cap_s, max(0.0, float(text)))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT
        when = when.replace(tzinfo=UTC)
    return min(cap_s, max(0.0, (when - datetime.now(UTC)).total_seconds()))


async def with_retries(
    attempt_once: Callable[[], Awaitable[T]],
    *,
    retries: int,
    should_retry: RetryDecision[T],
    deadline: float | None = None,
    out_of_time: Callable[[], BaseException] | None = None,
    on_retry: Callable[[], None] | None = None,
) -> T:
    """Run ``attempt_once`` and retry it up to ``retries`` times.

    After each attempt ``should_retry(result, error, attempt)`` says how long to wait
    before the next one (``None``: done — the result is returned or the error raised).
    ``deadline`` is a ``time.monotonic()`` instant: a retry that would start after it
    raises ``out_of_time()`` instead (or the last error, or returns the last result).
    ``on_retry`` is called before each wait (for metrics).
    """
    attempt = 0
    while True:
        result: T | None = None
        error: BaseException | None = None
        try:
            result = await attempt_once()
        except Exception as e:
            error = e
        wait = should_retry(result, error, attempt) if attempt < retries else None
        if wait is None:
            if error is not None:
                raise error
            return result  # type: ignore[return-value]  # no error: the attempt returned a T
        if deadline is not None and time.monotonic() + wait >= deadline:
            if out_of_time is not None:
                raise out_of_time()
            if error is not None:
                raise error
            return result  # type: ignore[return-value]
        attempt += 1
        if on_retry is not None:
            on_retry()
        await asyncio.sleep(wait)
