"""The ``bollard`` command (DESIGN §11).

Every subcommand is a thin front over the same modules the HTTP API uses: ``validate``
uses the package loader, ``call`` and ``test`` the execution service, ``serve`` the app.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bollard.platform.settings import Settings


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    if getattr(args, "integrations", None):
        overrides["integrations_dir"] = Path(args.integrations)
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    return Settings(**overrides)


def _add_dirs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--integrations", metavar="DIR", help="integrations directory (BOLLARD_INTEGRATIONS_DIR)")
    p.add_argument("--data-dir", metavar="DIR", help="data directory (BOLLARD_DATA_DIR)")


# --- serve -----------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn
    from bollard.platform.api.app import create_app
    from bollard.platform.runtime import ADMIN_TOKEN_FILE, Runtime

    overrides: dict[str, Any] = {"host": args.host, "port": args.port}
    settings = _settings(args).model_copy(update=overrides)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    runtime = Runtime(settings)

    async def main() -> None:
        await runtime.start()
        try:  # start one worker now so /healthz reports the isolation layers in force
            layers = await runtime.pool.probe()
            print(
                "  Sandbox layers: " + ", ".join(k for k, v in layers.items() if v and k != "probed"),
                flush=True,
            )
        except Exception as e:
            print(
                f"  Warning: the sandbox could not start a worker ({e}); REST operations will fail",
                flush=True,
            )
        created = await runtime.ensure_admin_token()
        url = f"http://{settings.host}:{settings.port}"
        token_file = settings.data_dir / ADMIN_TOKEN_FILE
        print(f"Bollard is serving {settings.integrations_dir.resolve()} at {url}", flush=True)
        print(f"  API docs: {url}/docs", flush=True)
        if created:
            print(f"  Admin token (created now, saved to {token_file}): {created}", flush=True)
        elif token_file.exists():
            print(f"  Admin token ({token_file}): {token_file.read_text().strip()}", flush=True)
        config = uvicorn.Config(
            create_app(runtime=runtime),
            host=settings.host,
            port=settings.port,
            log_level="info",
            access_log=settings.access_log,  # the execution log records every call
        )
        await uvicorn.Server(config).serve()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
    return 0


# --- validate --------------------------------------------------------------------


def _validate_manifest_only(path: Path) -> tuple[list[str], list[str]]:
    from bollard.platform.manifest import ManifestError, parse_manifest_bytes

    config = path / "config.json" if path.is_dir() else path
    try:
        parsed = parse_manifest_bytes(config.read_bytes())
    except OSError as e:
        return [f"config.json: cannot read ({e.strerror})"], []
    except ManifestError as e:
        return [f"config.json: {i}" for i in e.issues], []
    return [], [f"config.json: {w}" for w in parsed.warnings]


def _validate_folder(path: Path) -> tuple[list[str], list[str]]:
    from bollard.platform.errors import PackageError
    from bollard.platform.lint import lint_version
    from bollard.platform.packages import load_folder

    try:
        version = load_folder(path)
    except PackageError as e:
        return list(e.errors), []
    return lint_version(version), [f"config.json: {w}" for w in version.warnings]


def _targets(paths: Sequence[str]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir() and not (p / "config.json").exists():
            out.extend(c for c in sorted(p.iterdir()) if c.is_dir() and not c.name.startswith("."))
        else:
            out.append(p)
    return out


def cmd_validate(args: argparse.Namespace) -> int:
    failed = 0
    targets = _targets(args.paths)
    if not targets:
        print("nothing to validate: no integration folders found", file=sys.stderr)
        return 1
    for path in targets:
        if not path.exists():
            errors, warnings = [f"{path}: no such file or folder"], list[str]()
        elif args.manifest_only:
            errors, warnings = _validate_manifest_only(path)
        else:
            errors, warnings = _validate_folder(path)
        label = path.name if path.is_dir() else str(path)
        if errors:
            failed += 1
            print(f"✗ {label}")
            for e in errors:
                print(f"    error: {e}")
        else:
            print(f"✓ {label}")
        for w in warnings:
            print(f"    warning: {w}")
    print(f"{len(targets) - failed} valid, {failed} invalid")
    return 1 if failed else 0


# --- token, list, schema, new -------------------------------------------------------


def cmd_token(args: argparse.Namespace) -> int:
    from bollard.platform import tokens
    from bollard.platform.store.db import create_engine, migrate

    settings = _settings(args)

    async def main() -> str:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = create_engine(settings.resolved_database_url())
        try:
            await migrate(engine)
            return await tokens.create_token(engine, args.role, name=args.name or "")
        finally:
            await engine.dispose()

    print(asyncio.run(main()))
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from bollard.platform.runtime import Runtime

    async def main() -> list[dict[str, Any]]:
        runtime = Runtime(_settings(args))
        await runtime.start(watch=False)
        try:
            rows = []
            for entry in runtime.registry.entries():
                status, error, missing = await runtime.status(entry)
                v = entry.version
                rows.append(
                    {
                        "slug": entry.slug,
                        "status": status,
                        "title": v.manifest.title if v else None,
                        "version": v.version if v else None,
                        "type": v.manifest.type if v else None,
                        "operations": [op.name for op in v.manifest.all_operations] if v else [],
                        **({"error": error} if error else {}),
                        **({"missingCredentials": missing} if missing else {}),
                    }
                )
            return rows
        finally:
            await runtime.stop()

    rows = asyncio.run(main())
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for r in rows:
        line = f"{r['slug']:<24} {r['status']:<18} v{r['version'] or '-':<3} {r['type'] or '-':<9} {r['title'] or ''}"
        print(line.rstrip())
        if "error" in r:
            print(f"    error: {r['error']}")
        if "missingCredentials" in r:
            print(f"    missing credentials: {', '.join(r['missingCredentials'])}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from bollard.platform.manifest import json_schema

    print(json.dumps(json_schema(), indent=2))
    return 0


def cmd_new(args: argparse.Namespace) -> int:
    from bollard.platform.errors import ScaffoldError
    from bollard.platform.scaffold import scaffold

    target_root = Path(args.dir) if args.dir else _settings(args).integrations_dir
    try:
        path = scaffold(args.slug, target_root, sql=args.sql)
    except ScaffoldError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"created {path}")
    print(f"next: edit {path / 'config.json'}, then run: bollard validate {path}")
    return 0


def cmd_call(args: argparse.Namespace) -> int:
    """Run one operation through the execution service and print the envelope as JSON.

    Exit 0 on success, 2 when held for approval (the approval id is printed), 1 on error.
    """
    from bollard.platform.execution import Invocation
    from bollard.platform.runtime import Runtime

    try:
        params = json.loads(args.params)
    except json.JSONDecodeError as e:
        print(
            f"error: --params is not valid JSON (line {e.lineno} column {e.colno}: {e.msg})", file=sys.stderr
        )
        return 1

    async def main() -> tuple[int, dict[str, Any]]:
        runtime = Runtime(_settings(args))
        await runtime.start(watch=False)
        try:
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
        finally:
            await runtime.stop()

    status, body = asyncio.run(main())
    print(json.dumps(body, indent=2, default=str))
    if status == 202:
        print(f"held for approval {body['approvalId']}: nothing ran; {body['message']}", file=sys.stderr)
        return 2
    return 0 if status < 300 else 1


def cmd_test(args: argparse.Namespace) -> int:
    """Test connection from the command line: print each step; exit 0 when it passed."""
    from bollard.platform.connection_test import run_connection_test
    from bollard.platform.errors import ExecutionError
    from bollard.platform.runtime import Runtime

    async def main() -> dict[str, Any]:
        runtime = Runtime(_settings(args))
        await runtime.start(watch=False)
        try:
            return await run_connection_test(runtime, args.slug, args.credential_id)
        finally:
            await runtime.stop()

    try:
        report = asyncio.run(main())
    except ExecutionError as e:
        print(f"error: {e.message}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for step in report["steps"]:
            print(
                f"{'✓' if step['ok'] else '✗'} {step['name']:<13} {step['durationMs']:>8.1f} ms  {step['message']}"
            )
        print(("OK: " if report["ok"] else "FAILED: ") + report["message"])
    return 0 if report["ok"] else 1


def cmd_rotate_key(args: argparse.Namespace) -> int:
    """Re-encrypt every credential under a new key (DESIGN §7).

    With the key file: the new key is written first, next to the old one (so a crash
    leaves every value readable with one of the two), the rows are re-encrypted, then
    the old key is dropped from the file. With ``BOLLARD_SECRET_KEY``: pass
    ``--new-key``; afterwards set ``BOLLARD_SECRET_KEY`` to the new key.
    """
    from bollard.platform.credentials import CredentialStore, write_key_file
    from bollard.platform.runtime import KEY_FILE, secret_keys
    from bollard.platform.store.db import create_engine, migrate
    from cryptography.fernet import Fernet

    settings = _settings(args)
    old_keys = secret_keys(settings)
    new_key = args.new_key or Fernet.generate_key().decode()
    key_file = settings.data_dir / KEY_FILE
    if not settings.secret_key:
        write_key_file(key_file, [new_key, *[k for k in old_keys if k != new_key]])

    async def main() -> int:
        engine = create_engine(settings.resolved_database_url())
        try:
            await migrate(engine)
            return await CredentialStore(engine, old_keys).rotate(new_key)
        finally:
            await engine.dispose()

    count = asyncio.run(main())
    if settings.secret_key:
        print(
            f"re-encrypted {count} credential(s); now set BOLLARD_SECRET_KEY to the new key", file=sys.stderr
        )
        if not args.new_key:
            print(new_key)
    else:
        write_key_file(key_file, [new_key])
        print(f"re-encrypted {count} credential(s) under a new key in {key_file}", file=sys.stderr)
    return 0


# --- parser ------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bollard", description="A sandboxed, manifest-driven integration host."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="run the HTTP API, MCP endpoint and settings page")
    p.add_argument("--host", default=os.environ.get("BOLLARD_HOST", "127.0.0.1"))
    p.add_argument("--port", type=int, default=int(os.environ.get("BOLLARD_PORT", "8000")))
    _add_dirs(p)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("validate", help="check integration folders (or a directory of them)")
    p.add_argument("paths", nargs="+", metavar="PATH")
    p.add_argument("--manifest-only", action="store_true", help="check config.json alone")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("token", help="manage API tokens")
    tsub = p.add_subparsers(dest="token_command", required=True)
    tc = tsub.add_parser("create", help="create a token and print it alone on stdout")
    tc.add_argument("--role", choices=("admin", "agent"), required=True)
    tc.add_argument("--name", default="")
    tc.add_argument("--data-dir", metavar="DIR")
    tc.set_defaults(func=cmd_token)

    p = sub.add_parser("list", help="list installed integrations and their status")
    _add_dirs(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("call", help="run an operation and print the result envelope")
    p.add_argument("slug")
    p.add_argument("operation")
    p.add_argument("--params", default="{}", help="the parameters as a JSON object")
    p.add_argument("--credential-id", default="default")
    p.add_argument("--mock", action="store_true", help="return the operation's mock result")
    p.add_argument("--timeout-ms", type=int, default=None)
    p.add_argument("--retries", type=int, default=0)
    _add_dirs(p)
    p.set_defaults(func=cmd_call)

    p = sub.add_parser("test", help="test an integration's connection, step by step")
    p.add_argument("slug")
    p.add_argument("--credential-id", default="default")
    p.add_argument("--json", action="store_true")
    _add_dirs(p)
    p.set_defaults(func=cmd_test)

    p = sub.add_parser("rotate-key", help="re-encrypt every credential under a new key")
    p.add_argument("--new-key", help="the new key (default: a fresh Fernet key)")
    p.add_argument("--data-dir", metavar="DIR")
    p.set_defaults(func=cmd_rotate_key)

    p = sub.add_parser("schema", help="print the manifest JSON Schema")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("new", help="scaffold a new integration folder")
    p.add_argument("slug")
    p.add_argument("--sql", action="store_true", help="a SQL integration instead of a REST connector")
    p.add_argument("--dir", metavar="DIR", help="where to create it (default: the integrations directory)")
    p.add_argument("--integrations", metavar="DIR", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_new)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
