"""``bollard list``, ``schema``, ``tools`` and ``new``: the installed integrations, the
manifest schema, the operations as tool definitions, a new integration folder (DESIGN §11).

``list``, ``schema`` and ``tools`` write nothing to disk: ``list`` reads the state database only when
it exists (SQLite opened read-only), creates no data directory and no key file, and
without a database lists every integration as having no credentials set.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bollard.platform.cli.common import add_dirs, print_json, read_only_engine, settings_from
from bollard.platform.credentials import CredentialInfo, CredentialStore, read_key_file, split_keys
from bollard.platform.settings import Settings


class ReadOnlyCredentials:
    """The catalog's view of the credentials over a read-only engine (or none): which ids
    and keys are set (an unmigrated database has none), and whether the configured keys
    decrypt them (only when a key exists; nothing is created to find out)."""

    def __init__(self, engine: AsyncEngine | None, keys: list[str]) -> None:
        self.engine = engine
        self.store = CredentialStore(engine, keys, cache_ttl_s=0) if engine is not None and keys else None

    async def get(self, integration: str, credential_id: str) -> dict[str, str] | None:
        if self.store is None:
            return None
        return await self.store.get(integration, credential_id)

    async def describe(self, integration: str) -> list[CredentialInfo]:
        # lazy: keeps CLI start-up fast
        from sqlalchemy import select
        from sqlalchemy.exc import DBAPIError

        from bollard.platform.store.tables import credentials

        if self.engine is None:
            return []
        c = credentials.c
        query = select(c.credential_id, c["keys"], c.updated_at).where(c.integration == integration)
        try:
            async with self.engine.connect() as conn:
                rows = (await conn.execute(query.order_by(c.credential_id))).all()
        except DBAPIError:  # no such table: a database no server has migrated yet
            return []
        return [CredentialInfo(r[0], list(r[1]), r[2]) for r in rows]


async def list_rows(settings: Settings) -> list[dict[str, Any]]:
    """The catalog rows of ``GET /api/integrations`` (the same function), read without
    writing anything: the registry only if the directory exists, the state database
    read-only."""
    # lazy: keeps CLI start-up fast
    from bollard.platform.catalog import catalog
    from bollard.platform.registry import Registry
    from bollard.platform.runtime import KEY_FILE

    registry = Registry(settings.integrations_dir)
    if settings.integrations_dir.is_dir():  # load_all would create a missing directory
        registry.load_all()
    engine = read_only_engine(settings)
    if settings.secret_key:
        keys = split_keys(settings.secret_key)
    else:
        keys = read_key_file(settings.data_dir / KEY_FILE)
    try:
        return await catalog(registry, ReadOnlyCredentials(engine, keys))
    finally:
        if engine is not None:
            await engine.dispose()


def cmd_list(args: argparse.Namespace) -> int:
    """Print the integrations (a table, or JSON with ``--json``); exit 0."""
    rows = asyncio.run(list_rows(settings_from(args)))
    if args.json:
        print_json(rows)
        return 0
    for r in rows:
        version, kind = r["version"] or "-", r["type"] or "-"
        line = f"{r['slug']:<24} {r['status']:<18} v{version:<3} {kind:<9} {r['title'] or ''}"
        print(line.rstrip())
        if "error" in r:
            print(f"    error: {r['error']}")
        if "missingCredentials" in r:
            print(f"    missing credentials: {', '.join(r['missingCredentials'])}")
    return 0


def cmd_tools(args: argparse.Namespace) -> int:
    """Print ``{"format", "tools", "count"}`` as ``GET /api/tools`` answers it (the same
    function, every operation: the CLI runs as the operator); exit 0. Reads the
    integrations directory only."""
    from bollard.platform.registry import Registry
    from bollard.platform.tools import tool_definitions

    settings = settings_from(args)
    registry = Registry(settings.integrations_dir)
    if settings.integrations_dir.is_dir():  # load_all would create a missing directory
        registry.load_all()
    tools = tool_definitions(registry, args.format)
    print_json({"format": args.format, "tools": tools, "count": len(tools)})
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    """Print the manifest JSON Schema; exit 0."""
    # lazy: keeps CLI start-up fast
    from bollard.platform.manifest import json_schema

    print_json(json_schema())
    return 0


def cmd_new(args: argparse.Namespace) -> int:
    """Scaffold a folder that passes ``bollard validate``; exit 1 when the slug is invalid
    or the folder exists."""
    # lazy: keeps CLI start-up fast
    from bollard.platform.errors import ScaffoldError
    from bollard.platform.scaffold import scaffold

    target_root = Path(args.dir) if args.dir else settings_from(args).integrations_dir
    try:
        path = scaffold(args.slug, target_root, sql=args.sql, ts=args.ts)
    except ScaffoldError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 1
    print(f"created {path}")
    print(f"next: edit {path / 'config.json'}, then run: bollard validate {path}")
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "list",
        help="list installed integrations and their status (writes nothing)",
        description="List the integrations of the integrations directory with the status the "
        "catalog reports. Reads the state database only if it exists; writes nothing. Exit 0.",
    )
    add_dirs(p)
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser(
        "tools",
        help="print the operations as tool definitions for a model (writes nothing)",
        description="Print one tool definition per operation, as GET /api/tools answers it: "
        "openai (function tools), anthropic (input_schema) or mcp (the MCP Tool). Exit 0.",
    )
    add_dirs(p)
    p.add_argument("--format", choices=("openai", "anthropic", "mcp"), default="openai")
    p.set_defaults(func=cmd_tools)

    p = sub.add_parser("schema", help="print the manifest JSON Schema")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser(
        "new",
        help="scaffold a new integration folder",
        description="Create SLUG/ with a config.json (and connector.py for REST, or Tale's "
        "connector.ts with --ts) that passes bollard validate. Exit status: 0 created, 1 invalid "
        "slug or the folder exists.",
    )
    p.add_argument("slug")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--sql", action="store_true", help="a SQL integration instead of a REST connector")
    kind.add_argument(
        "--ts",
        action="store_true",
        help="a TypeScript connector (Tale's connector.ts) instead of connector.py",
    )
    p.add_argument("--dir", metavar="DIR", help="where to create it (default: the integrations directory)")
    p.add_argument("--integrations", metavar="DIR", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_new)
