"""``bollard mcp``: Bollard as an MCP server on stdin/stdout (DESIGN §9).

For MCP clients that start their servers as a command (Claude Desktop, IDEs, the MCP
Inspector). It runs the same runtime as ``bollard serve`` over the integrations and data
directories (the watcher included, so a folder edit sends ``tools/list_changed``), as the
token given by ``--token`` or ``BOLLARD_TOKEN`` (role ``agent`` or ``admin``). Logs go to
stderr; stdout carries only the protocol. Exit status: 0 when stdin closes, 1 when the
token is refused.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from typing import Any

from bollard.platform.cli.common import add_dirs, settings_from

TOKEN_ENV = "BOLLARD_TOKEN"


def cmd_mcp(args: argparse.Namespace) -> int:
    """Start the runtime, check the token, serve stdio until EOF."""
    # lazy: keeps CLI start-up fast
    from bollard.platform.mcp.auth import principal_from_token
    from bollard.platform.mcp.transport import serve_stdio
    from bollard.platform.runtime import Runtime

    token = args.token or os.environ.get(TOKEN_ENV, "")
    if not token.strip():
        print(
            f"bollard mcp needs a token: --token or {TOKEN_ENV} (bollard token create --role agent)",
            file=sys.stderr,
        )
        return 1
    logging.basicConfig(
        level=logging.WARNING, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    runtime = Runtime(settings_from(args))

    async def main() -> int:
        await runtime.start()
        try:
            try:
                principal = await principal_from_token(runtime, token)
            except ValueError as e:
                print(f"unauthorized: {e}", file=sys.stderr)
                return 1
            await serve_stdio(runtime, principal)
            return 0
        finally:
            await runtime.stop()

    try:
        return asyncio.run(main())
    except KeyboardInterrupt:
        return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "mcp",
        help="serve MCP on stdin/stdout (for MCP clients that start a command)",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--token", help=f"the API token to act as (default: {TOKEN_ENV})")
    add_dirs(p)
    p.set_defaults(func=cmd_mcp)
