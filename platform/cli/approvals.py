"""``bollard approvals list | show | approve | reject``: decide held writes from the command
line through the same service as the API (``Runtime.approvals``, DESIGN §6).

Every command prints JSON on stdout: ``list`` ``{"approvals": [...], "total": N}``, the
others one approval (``approve`` with the operation's result), or ``{"error": {code,
message}}``. Exit status: 0 done (``approve``: the operation succeeded); 1 an error (no
such approval, already decided, expired or stale) or the approved operation failed.
Decisions are recorded as made by ``cli``.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from bollard.platform.cli.common import add_dirs, error_json, print_json, settings_from

if TYPE_CHECKING:
    from bollard.platform.runtime import Runtime

CLI_PRINCIPAL_ID = "cli"
DESCRIPTION = """\
Decide held writes from the command line, through the same service as the API.
Every command prints JSON on stdout: list {"approvals": [...], "total": N}, the
others one approval (approve with the operation's result), or {"error": {"code",
"message"}}. Decisions are recorded as made by "cli".

Exit status: 0 done (approve: the operation ran and succeeded); 1 an error (no
such approval, already decided, expired or stale) or the approved operation failed.
"""


def _run(args: argparse.Namespace, work: Callable[[Runtime], Awaitable[dict[str, Any]]]) -> int:
    # lazy: keeps CLI start-up fast
    from bollard.platform.errors import BollardError
    from bollard.platform.runtime import Runtime

    async def main() -> dict[str, Any]:
        async with Runtime(settings_from(args)) as runtime:
            return await work(runtime)

    try:
        result = asyncio.run(main())
    except BollardError as e:
        print_json(error_json(e.code, e.message))
        return 1
    print_json(result)
    return 1 if result.get("status") == "failed" else 0


def _principal() -> Any:
    # lazy: keeps CLI start-up fast
    from bollard.platform.tokens import Principal

    return Principal(token_id=CLI_PRINCIPAL_ID, name="bollard approvals", role="admin")


def cmd_list(args: argparse.Namespace) -> int:
    async def work(rt: Runtime) -> dict[str, Any]:
        items, total = await rt.approvals.list(
            status=args.status, integration=args.integration, limit=args.limit
        )
        return {"approvals": items, "total": total}

    return _run(args, work)


def cmd_show(args: argparse.Namespace) -> int:
    return _run(args, lambda rt: rt.approvals.get(args.id))


def cmd_approve(args: argparse.Namespace) -> int:
    return _run(args, lambda rt: rt.approvals.approve(args.id, _principal()))


def cmd_reject(args: argparse.Namespace) -> int:
    return _run(args, lambda rt: rt.approvals.reject(args.id, _principal(), args.reason))


def register(sub: Any) -> None:
    # lazy: keeps CLI start-up fast
    from bollard.platform.approvals.rows import STATUSES

    p = sub.add_parser(
        "approvals",
        help="list, show, approve or reject approvals (JSON output)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    asub = p.add_subparsers(dest="approvals_command", required=True)
    a = asub.add_parser("list", help="approvals, newest first")
    a.add_argument("--status", choices=STATUSES, help="only approvals with this status")
    a.add_argument("--integration", metavar="SLUG", help="only approvals of this integration")
    a.add_argument("--limit", type=int, default=50, help="at most this many (1-500, default 50)")
    add_dirs(a)
    a.set_defaults(func=cmd_list)
    a = asub.add_parser("show", help="one approval, with its result when done")
    a.add_argument("id", metavar="ID")
    add_dirs(a)
    a.set_defaults(func=cmd_show)
    a = asub.add_parser("approve", help="approve and run it now (at most once); exit 1 if it failed")
    a.add_argument("id", metavar="ID")
    add_dirs(a)
    a.set_defaults(func=cmd_approve)
    a = asub.add_parser("reject", help="reject it")
    a.add_argument("id", metavar="ID")
    a.add_argument("--reason", metavar="TEXT", help="why (stored with the approval, at most 2000 characters)")
    add_dirs(a)
    a.set_defaults(func=cmd_reject)
