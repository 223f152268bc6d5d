"""``bollard token create | list | revoke``: API tokens in the state database (DESIGN §8, §11).

Exit status: 0 done; 1 ``revoke`` of an unknown id. ``create`` prints the token alone on
stdout (it is shown once); ``list`` never shows a token.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine

from bollard.platform.cli.common import add_data_dir, print_json, read_only_engine, settings_from
from bollard.platform.settings import Settings

T = TypeVar("T")


def with_state_db(settings: Settings, work: Callable[[AsyncEngine], Awaitable[T]]) -> T:
    """Run ``work`` against the migrated state database (created when missing)."""
    # lazy: keeps CLI start-up fast
    from bollard.platform.store.db import create_engine, migrate

    async def main() -> T:
        if not settings.database_url:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(settings.resolved_database_url())
        try:
            await migrate(engine)
            return await work(engine)
        finally:
            await engine.dispose()

    return asyncio.run(main())


def cmd_token_create(args: argparse.Namespace) -> int:
    # lazy: keeps CLI start-up fast
    from bollard.platform import tokens

    print(with_state_db(settings_from(args), lambda e: tokens.create_token(e, args.role, name=args.name)))
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    """A table (or ``--json``) of id, role, name, created, last used; writes nothing."""
    # lazy: keeps CLI start-up fast
    from sqlalchemy.exc import DBAPIError

    from bollard.platform import tokens

    async def main() -> list[tokens.TokenInfo]:
        engine = read_only_engine(settings_from(args))
        if engine is None:
            return []
        try:
            return await tokens.list_tokens(engine)
        except DBAPIError:  # a database no server has migrated yet
            return []
        finally:
            await engine.dispose()

    rows = [t.to_json() for t in asyncio.run(main())]
    if args.json:
        print_json(rows)
        return 0
    print(f"{'ID':<36}  {'ROLE':<5}  {'CREATED':<25}  {'LAST USED':<25}  NAME")
    for r in rows:
        print(
            f"{r['id']:<36}  {r['role']:<5}  {r['createdAt']:<25}  "
            f"{r['lastUsedAt'] or 'never':<25}  {r['name']}".rstrip()
        )
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    # lazy: keeps CLI start-up fast
    from bollard.platform import tokens
    from bollard.platform.pg_events import notify_replicas

    async def revoke(engine: Any) -> tuple[bool, bool]:
        if not await tokens.revoke_token(engine, args.id):
            return False, False
        return True, await notify_replicas(engine, "token", {"tokenId": args.id})  # DESIGN §12

    found, told = with_state_db(settings_from(args), revoke)
    if not found:
        print(f"error: no token with id '{args.id[:80]}' (see: bollard token list)", file=sys.stderr)
        return 1
    when = "at once" if told else "within BOLLARD_CACHE_TTL_S seconds"
    print(f"revoked {args.id}; running servers refuse it {when}", file=sys.stderr)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("token", help="create, list and revoke API tokens")
    tsub = p.add_subparsers(dest="token_command", required=True)
    tc = tsub.add_parser("create", help="create a token and print it alone on stdout (shown once)")
    tc.add_argument("--role", choices=("admin", "agent"), required=True)
    tc.add_argument("--name", default="", help="a label shown by token list")
    add_data_dir(tc)
    tc.set_defaults(func=cmd_token_create)
    tl = tsub.add_parser(
        "list", help="id, role, created, last used and name of every token (never the token)"
    )
    tl.add_argument("--json", action="store_true", help="print a JSON array")
    add_data_dir(tl)
    tl.set_defaults(func=cmd_token_list)
    tr = tsub.add_parser("revoke", help="delete a token by id; exit 1 when there is none")
    tr.add_argument("id", metavar="ID", help="the token's id (from token list)")
    add_data_dir(tr)
    tr.set_defaults(func=cmd_token_revoke)
