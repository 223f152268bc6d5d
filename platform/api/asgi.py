"""Small ASGI pieces the host's middlewares share."""

from __future__ import annotations

from starlette.types import Message, Send


class StartTracker:
    """Wraps an ASGI ``send`` and remembers whether the response has started (after that
    a middleware can no longer answer with its own error, only let the server close it)."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self.send(message)
