"""``bollard call`` and ``bollard test``: one operation or Test connection through the
execution service, as the API runs them (DESIGN §8)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from bollard.platform.cli.common import add_dirs, print_json, settings_from


def cmd_call(args: argparse.Namespace) -> int:
    """Run one operation through the execution service and print the envelope as JSON.

    Exit 0 on success, 2 when held for approval (the pending approval is printed; decide
    it with ``bollard approvals approve ID``), 1 on error.
    """
    # lazy: keeps CLI start-up fast
    from bollard.platform.invocation import Invocation
    from bollard.platform.runtime import Runtime

    try:
        params = json.loads(args.params)
    except json.JSONDecodeError as e:
        print(
            f"error: --params is not valid JSON (line {e.lineno} column {e.colno}: {e.msg})", file=sys.stderr
        )
        return 1
    from bollard.platform.params import non_finite_problems

    non_finite = non_finite_problems(params)
    if non_finite:  # Python's json accepts NaN and Infinity; JSON (and Bollard, DESIGN §8) does not
        for p in non_finite:
            print(f"error: --params: {p['path']}: {p['message']}", file=sys.stderr)
        return 1

    async def main() -> tuple[int, dict[str, Any]]:
        async with Runtime(settings_from(args)) as runtime:
            outcome = await runtime.execution.invoke(
                Invocation(
                    slug=args.slug,
                    operation=args.operation,
                    params=params,
                    credential_id=args.credential_id,
                    use_mock=args.mock,
                    timeout_ms=args.timeout_ms,
                    retries=args.retries,
                    caller="cli",
                )
            )
            return outcome.status, outcome.body

    status, body = asyncio.run(main())
    print_json(body)
    if status == 202:
        print(f"held for approval {body['approvalId']}: nothing ran; {body['message']}", file=sys.stderr)
        return 2
    return 0 if status < 300 else 1


def cmd_test(args: argparse.Namespace) -> int:
    """Test connection from the command line: print each step; exit 0 when it passed, 1 otherwise."""
    # lazy: keeps CLI start-up fast
    from bollard.platform.errors import BollardError
    from bollard.platform.runtime import Runtime

    async def main() -> dict[str, Any]:
        async with Runtime(settings_from(args)) as runtime:
            return await runtime.execution.connection_test(args.slug, args.credential_id, caller="cli")

    try:
        report = asyncio.run(main())
    except BollardError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 1
    if args.json:
        print_json(report)
    else:
        for step in report["steps"]:
            print(
                f"{'✓' if step['ok'] else '✗'} {step['name']:<13} {step['durationMs']:>8.1f} ms  "
                f"{step['message']}"
            )
        print(("OK: " if report["ok"] else "FAILED: ") + report["message"])
    return 0 if report["ok"] else 1


def register(sub: Any) -> None:
    p = sub.add_parser(
        "call",
        help="run an operation and print the result envelope",
        description="Run one operation through the execution service (parameter checks, "
        "approvals, limits) and print the result envelope as JSON. Exit status: 0 success, "
        "1 error, 2 held for a person's approval (the pending approval is printed).",
    )
    p.add_argument("slug")
    p.add_argument("operation")
    p.add_argument("--params", default="{}", help="the parameters as a JSON object (default: {})")
    p.add_argument("--credential-id", default="default", help="which stored credential to use")
    p.add_argument("--mock", action="store_true", help="return the operation's mock result")
    p.add_argument("--timeout-ms", type=int, default=None, help="wall-time limit of this call (ms)")
    p.add_argument("--retries", type=int, default=0, help="retries on network errors (reads only)")
    add_dirs(p)
    p.set_defaults(func=cmd_call)

    p = sub.add_parser(
        "test",
        help="test an integration's connection, step by step",
        description="Test connection: print each step with its duration. Exit status: 0 passed, 1 failed.",
    )
    p.add_argument("slug")
    p.add_argument("--credential-id", default="default", help="which stored credential to test")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    add_dirs(p)
    p.set_defaults(func=cmd_test)
