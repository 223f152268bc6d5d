"""Request body size limit (ASGI middleware): larger bodies get ``413`` as a JSON error.

A body announced by ``Content-Length`` is refused before it is read; a chunked body (no
``Content-Length``) is counted while the app reads it. The overflow is raised as an HTTP
413 exception: FastAPI's body parser turns any other exception into a 400 "There was an
error parsing the body", but re-raises HTTP exceptions, so the JSON error handler answers
``payload_too_large`` either way.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bollard.platform.api.asgi import StartTracker
from bollard.platform.errors import error_body

MAX_BODY_BYTES = 1024 * 1024


class BodySizeLimit:
    """Refuse request bodies over ``max_bytes`` (by ``Content-Length`` or while streaming)."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_bytes
                except ValueError:
                    too_big = False
                if too_big:
                    await self._refuse(send)
                    return
        received = 0
        tracked = StartTracker(send)

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge(self.message)
            return message

        try:
            await self.app(scope, limited_receive, tracked)
        except _TooLarge:
            if not tracked.started:
                await self._refuse(send)

    @property
    def message(self) -> str:
        return f"the request body is larger than {self.max_bytes} bytes"

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(error_body("payload_too_large", self.message)).encode()
        headers: list[Any] = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(HTTPException):
    """Raised from ``receive`` once a streamed body passes the limit."""

    def __init__(self, message: str) -> None:
        super().__init__(status_code=413, detail=message)
