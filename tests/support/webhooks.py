"""A real webhook receiver for the outbox tests, and the README's verification recipe."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from tests.support.paths import REPO
from tests.support.standin import ServerThread


@dataclass(frozen=True)
class Received:
    """One request the receiver got: when (``time.time()``), lower-case headers, raw body."""

    at: float
    path: str
    headers: dict[str, str]
    body: bytes


class WebhookReceiver(ServerThread):
    """Records every request; answers each from ``script`` (``(status, headers)`` pairs,
    consumed in order; a header value may be a function, called when answering), then
    ``200``. ``config`` goes to uvicorn (``ssl_certfile``…)."""

    def __init__(self, script: list[tuple[int, dict[str, Any]]] | None = None, **config: Any) -> None:
        self.script = list(script or [])
        self.received: list[Received] = []
        self._lock = threading.Lock()
        super().__init__(self._app, interface="asgi3", **config)
        if "ssl_certfile" in config:
            self.url = f"https://localhost:{self.port}"

    def answer_with(self, *script: tuple[int, dict[str, Any]]) -> None:
        with self._lock:
            self.script = list(script)

    def count(self) -> int:
        with self._lock:
            return len(self.received)

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        body = await request.body()
        with self._lock:
            self.received.append(Received(time.time(), request.url.path, dict(request.headers.items()), body))
            status, headers = self.script.pop(0) if self.script else (200, {})
        headers = {k: v() if callable(v) else v for k, v in headers.items()}
        await Response(b"ok", status_code=status, headers=headers)(scope, receive, send)


def readme_verify() -> Callable[[str, dict[str, str], bytes], bool]:
    """The ``verify`` function of the README's webhook recipe (the block after
    ``<!-- webhook-verify -->``), executed as written."""
    text = (REPO / "README.md").read_text()
    match = re.search(r"<!-- webhook-verify -->\s*```python\n(.*?)```", text, re.S)
    assert match, "README.md lost its webhook verification recipe"
    namespace: dict[str, Any] = {}
    exec(compile(match.group(1), "README.md#webhook-verify", "exec"), namespace)  # noqa: S102
    verify: Callable[[str, dict[str, str], bytes], bool] = namespace["verify"]
    return verify
