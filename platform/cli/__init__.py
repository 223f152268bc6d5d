"""The ``bollard`` command (DESIGN §11): one module per command family.

Every subcommand is a thin front over the same modules the HTTP API uses: ``validate``
the package loader and its lints, ``call``, ``test`` and ``approvals`` the runtime's
execution and approval services, ``serve`` the app. ``list``, ``validate`` and
``schema`` write nothing to disk. Exit status: 0 success, 1 an error (printed), and
``call`` 2 when the operation is held for approval.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from bollard.platform.cli import approvals, integrations, keys, mcp, run, serve, tokens, validate


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bollard",
        description="A sandboxed, manifest-driven integration host. Exit status: 0 success, "
        "1 error; `call` exits 2 when the operation waits for a person's approval.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve.register(sub)
    validate.register(sub)
    tokens.register(sub)
    integrations.register(sub)
    run.register(sub)
    approvals.register(sub)
    keys.register(sub)
    mcp.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default: ``sys.argv[1:]``), run the subcommand, return its exit status."""
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result
