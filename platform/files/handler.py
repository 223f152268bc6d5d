"""``ctx.files`` for one execution: the sandbox's file handler (DESIGN §3, §4.4).

:class:`ExecutionFiles` answers the worker's ``file_store`` and ``file_download``
messages (:class:`bollard.sandbox.job.FileHandler`): it cleans the name and media
type (:mod:`.names`), applies the operator's caps (``max_file_bytes`` per file,
``max_files_bytes_per_execution`` and ``max_files_per_execution`` per execution),
fetches downloads through the execution's own HTTP handler (so the egress policy,
the response budget and the wall time apply as to ``ctx.http``), writes through
:class:`~.store.FileStore`, and adds each FileReference to the call's execution record.
Every refusal is an :class:`~bollard.sandbox.errors.HttpRequestRefused` the connector
sees as an exception.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import unquote, urlsplit

from bollard.platform.execution_log import add_execution_file
from bollard.sandbox.errors import HttpRequestRefused
from bollard.sandbox.protocol import FileDownload, FileStore, HttpRequest, HttpResponse

from .names import DEFAULT_CONTENT_TYPE, clean_content_type, clean_file_name
from .store import FileOwner
from .store import FileStore as Store

HttpHandler = Callable[[HttpRequest], Awaitable[HttpResponse]]


class ExecutionFiles:
    """The file handler of one execution; see the module docstring. Caps in bytes."""

    def __init__(
        self,
        store: Store,
        owner: FileOwner,
        http_handler: HttpHandler,
        *,
        max_file_bytes: int,
        max_total_bytes: int,
        max_files: int,
    ) -> None:
        self._store = store
        self._owner = owner
        self._http = http_handler
        self.max_file_bytes = max_file_bytes
        self.max_total_bytes = max_total_bytes
        self.max_files = max_files
        self.stored_bytes = 0
        self.stored_files = 0

    def _check_caps(self, size: int) -> None:
        if size > self.max_file_bytes:
            raise HttpRequestRefused(
                "limit_exceeded",
                f"the file is {size} bytes, larger than the limit of {self.max_file_bytes} bytes "
                "per file (the operator's BOLLARD_MAX_FILE_BYTES)",
            )
        if self.stored_files + 1 > self.max_files:
            raise HttpRequestRefused(
                "limit_exceeded",
                f"the execution already stored {self.stored_files} files, the limit per execution "
                "(BOLLARD_MAX_FILES_PER_EXECUTION)",
            )
        if self.stored_bytes + size > self.max_total_bytes:
            raise HttpRequestRefused(
                "limit_exceeded",
                f"storing {size} more bytes would pass the limit of {self.max_total_bytes} bytes of files "
                "per execution (BOLLARD_MAX_FILES_BYTES_PER_EXECUTION)",
            )

    async def _save(self, data: bytes, file_name: str, content_type: str) -> dict[str, Any]:
        self._check_caps(len(data))
        # Counted before the write: concurrent calls cannot happen (one execution is one
        # sequential run), and a failed write still used its share.
        self.stored_files += 1
        self.stored_bytes += len(data)
        try:
            reference = await self._store.save(
                data, file_name=file_name, content_type=content_type, owner=self._owner
            )
        except OSError:
            raise HttpRequestRefused("file_error", "the host could not write the file") from None
        add_execution_file(reference)
        return reference

    async def store(self, request: FileStore) -> dict[str, Any]:
        """``ctx.files.store``: cap, clean and save; Tale's FileReference."""
        try:
            content_type = clean_content_type(request.content_type)
        except ValueError as exc:
            raise HttpRequestRefused("connector_error", f"ctx.files.store(): {exc}") from None
        return await self._save(request.data, clean_file_name(request.file_name), content_type)

    async def download(self, request: FileDownload) -> dict[str, Any]:
        """``ctx.files.download``: GET ``url`` through the execution's HTTP handler (egress
        policy, response budget, wall time), refuse a non-2xx answer, cap and save."""
        response = await self._http(HttpRequest("GET", request.url, dict(request.headers)))
        if not 200 <= response.status < 300:
            origin = urlsplit(request.url)
            raise HttpRequestRefused(
                "bad_response",
                f"ctx.files.download(): {origin.scheme}://{origin.netloc} answered {response.status}",
            )
        try:
            content_type = clean_content_type(response.headers.get("content-type"))
        except ValueError:
            content_type = DEFAULT_CONTENT_TYPE  # the upstream's header, not the connector's
        name = request.file_name or unquote(urlsplit(response.url or request.url).path.rsplit("/", 1)[-1])
        return await self._save(response.body, clean_file_name(name), content_type)
