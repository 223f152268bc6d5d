"""One request id per HTTP request: in the response headers, the logs and the execution record.

The API's middleware (``api/request_id.py``) takes a sane incoming ``X-Request-Id`` or
makes one and sets it here for the request's task; the execution log stores it with each
record, :class:`RequestIdFilter` puts it on every log record (uvicorn's access lines
too, :func:`uvicorn_log_config`), and the spans carry it. Outside a request (the CLI,
background sweeps) there is none (``None``; ``-`` in logs).
"""

from __future__ import annotations

import copy
import logging
import re
import uuid
from contextvars import ContextVar, Token
from typing import Any

HEADER = "X-Request-Id"
MAX_CHARS = 64
# Letters, digits and ._:- only: the id goes into log lines and response headers as it
# came, so nothing that could split a line, a header or a log format is accepted.
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,64}")

_current: ContextVar[str | None] = ContextVar("bollard_request_id", default=None)


def new_request_id() -> str:
    """A fresh id: 32 hex digits (a UUID4 without dashes)."""
    return uuid.uuid4().hex


def accept(incoming: str | None) -> str:
    """``incoming`` when it is sane (1–64 of ``A-Z a-z 0-9 . _ : -``), else a new id."""
    if incoming is not None and _SANE.fullmatch(incoming):
        return incoming
    return new_request_id()


def current() -> str | None:
    """The request id of the request this task serves, or ``None``."""
    return _current.get()


def set_current(request_id: str | None) -> Token[str | None]:
    """Set the id for this task (and the tasks it starts); returns the token to reset."""
    return _current.set(request_id)


def reset(token: Token[str | None]) -> None:
    _current.reset(token)


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (``-`` outside a request) so a format can show
    ``%(request_id)s``; install it on handlers (a logger's filter misses its children)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _current.get() or "-"
        return True


def install_log_filter(logger: logging.Logger | None = None) -> None:
    """Put a :class:`RequestIdFilter` on every handler of ``logger`` (default: the root),
    once each."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
            handler.addFilter(RequestIdFilter())


def uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's default logging configuration (``uvicorn.config.LOGGING_CONFIG``, a
    ``logging.config.dictConfig`` dict) with :class:`RequestIdFilter` on the access
    handler and the id ending each access line: ``INFO:     127.0.0.1:50123 - "GET
    /healthz HTTP/1.1" 200 OK [<id>]``. uvicorn writes the line when the response
    starts, inside the request's task, where the id is still set."""
    from uvicorn.config import LOGGING_CONFIG  # lazy: only servers need uvicorn

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["request_id"] = {"()": RequestIdFilter}
    config["handlers"]["access"]["filters"] = ["request_id"]
    access = config["formatters"]["access"]
    access["fmt"] = access["fmt"] + " [%(request_id)s]"
    return config
