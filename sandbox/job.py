"""One execution the host asks of the sandbox: :class:`Job` (which connector, entry point
and inputs, under which limits, answered by which host callbacks) and :class:`RunResult`
(what a successful one returns), with the callback types :data:`HttpHandler` and
:class:`FileHandler`. :meth:`bollard.sandbox.pool.SandboxPool.run` takes a job."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .frames import plain_json
from .limits import DEFAULT_LIMITS, Limits
from .protocol import FileDownload, FileStore, HttpRequest, HttpResponse

ENTRYPOINTS = ("execute", "test_connection")

HttpHandler = Callable[[HttpRequest], Awaitable[HttpResponse]]


class FileHandler(Protocol):
    """The host's file store for one execution (``ctx.files``, DESIGN §3). Both methods
    return Tale's FileReference ``{fileId, url, fileName, contentType, size}`` and raise
    :class:`~bollard.sandbox.errors.HttpRequestRefused` for a refusal (a cap, a host
    outside ``allowedHosts``), which the connector sees as an exception."""

    async def store(self, request: FileStore) -> dict[str, Any]: ...

    async def download(self, request: FileDownload) -> dict[str, Any]: ...


@dataclass(frozen=True, kw_only=True)
class Job:
    """Run ``entrypoint`` (``"execute"`` or ``"test_connection"``) of connector ``source``
    once, with its own ``ctx`` (``operation``, a copy of ``params``, ``secrets`` of this
    call only) under ``limits``.

    - ``key``: the integration version, ``"<slug>:<content hash>"``; ``tenant``: whose
      call it is (the credential id; ``""`` only for callers with a single tenant). A
      worker serves one (key, tenant) and one source for its whole life (DESIGN §4.5).
    - ``http_handler`` answers each ``ctx.http`` call (the egress policy is the host's);
      ``file_handler`` serves ``ctx.files`` (none: ``ctx.files`` calls are refused).
    - ``filename`` picks the worker kind (:mod:`bollard.sandbox.kinds`): ``connector.py``
      runs in the Python worker, ``connector.ts`` / ``connector.js`` in the Deno worker.
    """

    key: str
    source: str
    entrypoint: str
    operation: str
    params: dict[str, Any]
    secrets: dict[str, str]
    http_handler: HttpHandler
    tenant: str = ""
    limits: Limits = DEFAULT_LIMITS
    file_handler: FileHandler | None = None
    filename: str = "connector.py"

    def checked(self) -> Job:
        """This job with ``params`` as a plain-JSON copy (:func:`~.frames.plain_json`).
        ``ValueError`` for an unknown entry point, ``TypeError`` for fields of the wrong
        type, either from :func:`~.frames.plain_json` for params that are not plain
        JSON: arguments the host got wrong."""
        if self.entrypoint not in ENTRYPOINTS:
            raise ValueError(f"entrypoint must be one of {ENTRYPOINTS}")
        if type(self.operation) is not str or type(self.key) is not str or type(self.tenant) is not str:
            raise TypeError("key, tenant and operation must be str")
        if type(self.secrets) is not dict or any(
            type(k) is not str or type(v) is not str for k, v in self.secrets.items()
        ):
            raise TypeError("secrets must be a dict of str to str")
        if type(self.params) is not dict:
            raise TypeError("params must be a dict")
        return dataclasses.replace(self, params=plain_json(self.params, "params"))


@dataclass(frozen=True)
class RunResult:
    """A successful execution: ``value`` (plain JSON), ``logs`` (print/ctx.log lines),
    ``http_requests`` (number of ``ctx.http`` calls), ``duration_ms`` (wall time of
    the whole call, including any wait for a worker)."""

    value: Any
    logs: list[str]
    http_requests: int
    duration_ms: float
