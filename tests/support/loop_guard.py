"""A bounded end for each test's event loop.

``asyncio.Runner.close`` cancels the tasks a test left on its loop and waits for them
without a limit; one task that never finishes would stall the whole suite (seen twice
under heavy load, not reproduced on a quiet machine). This replaces that wait with one
of :data:`WAIT_S` seconds and prints every task still pending, with its stack, so the
run goes on and the log names the culprit.
"""

from __future__ import annotations

import asyncio
import asyncio.runners
import sys
from typing import Any

WAIT_S = 20.0


def _bounded_cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
    to_cancel = asyncio.all_tasks(loop)
    if not to_cancel:
        return
    for task in to_cancel:
        task.cancel()
    _, pending = loop.run_until_complete(asyncio.wait(to_cancel, timeout=WAIT_S))
    for task in pending:
        print(f"\nloop_guard: a task did not end {WAIT_S:.0f} s after its cancel:", file=sys.__stderr__)
        task.print_stack(file=sys.__stderr__)
    for task in to_cancel - pending:
        if not task.cancelled() and task.exception() is not None:
            context: dict[str, Any] = {
                "message": "unhandled exception during asyncio.run() shutdown",
                "exception": task.exception(),
                "task": task,
            }
            loop.call_exception_handler(context)


def install() -> None:
    """Use the bounded wait for every loop the tests' runners close."""
    asyncio.runners._cancel_all_tasks = _bounded_cancel_all_tasks  # type: ignore[attr-defined]
