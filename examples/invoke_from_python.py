"""Invoke an operation from Python, in process, without an HTTP server (the library path).

From the repository root, after ``make install``:

    .venv/bin/python examples/invoke_from_python.py                      # the hotel's confirmed reservations
    .venv/bin/python examples/invoke_from_python.py --status cancelled   # another filter
    .venv/bin/python examples/invoke_from_python.py --cancel 8           # held for approval: prints its id

It uses the shipped integrations in ``integrations/`` and the same data directory as
``make run`` (``.bollard``: credentials, approvals, the execution log). The same
validation, limits and approval rules apply as over HTTP: a write such as
``cancel_reservation`` is held (status 202) until a person approves it, e.g. with
``POST /api/approvals/{id}/approve`` on a running server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from bollard.platform.invocation import Invocation
from bollard.platform.runtime import Runtime
from bollard.platform.settings import Settings


async def invoke(settings: Settings, operation: str, params: dict[str, object]) -> int:
    """Run ``hotel.<operation>`` once and print the envelope; return the HTTP-like status."""
    runtime = Runtime(settings)
    await runtime.start(watch=False)  # migrations and the registry; no file watcher needed
    try:
        outcome = await runtime.execution.invoke(
            Invocation(slug="hotel", operation=operation, params=params, caller="python")
        )
    finally:
        await runtime.stop()
    print(json.dumps(outcome.body, indent=2, default=str))
    return outcome.status


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--integrations", default="integrations", help="integrations directory")
    parser.add_argument("--data-dir", default=".bollard", help="data directory (state, keys)")
    parser.add_argument("--status", default="confirmed", help="list reservations with this status")
    parser.add_argument("--cancel", type=int, default=None, help="reservation id to cancel (needs approval)")
    args = parser.parse_args()
    settings = Settings(integrations_dir=Path(args.integrations), data_dir=Path(args.data_dir), reload=False)
    if args.cancel is None:
        status = asyncio.run(invoke(settings, "list_reservations", {"status": args.status}))
    else:
        status = asyncio.run(invoke(settings, "cancel_reservation", {"id": args.cancel}))
        if status == 202:
            print("held for approval; approve it on a running server or the settings page", file=sys.stderr)
    return 0 if status < 300 else 1


if __name__ == "__main__":
    sys.exit(main())
