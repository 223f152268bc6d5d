"""Builders for integration folders (a REST manifest, a connector, extra files)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SIMPLE_CONNECTOR = """
def execute(ctx):
    return {"operation": ctx.operation, "params": ctx.params}
"""


def rest_manifest(**overrides: Any) -> dict[str, Any]:
    m: dict[str, Any] = {
        "title": "Echo",
        "description": "Echoes its parameters",
        "version": 1,
        "type": "rest_api",
        "authMethod": "none",
        "operations": [
            {
                "name": "echo",
                "title": "Echo",
                "parametersSchema": {
                    "type": "object",
                    "properties": {"text": {"type": "string"}},
                },
            }
        ],
    }
    m.update(overrides)
    return m


def no_params_op(name: str, **extra: Any) -> dict[str, Any]:
    """An operation of a REST manifest that takes no parameters; ``extra`` fields on top."""
    return {"name": name, "parametersSchema": {"type": "object", "properties": {}}, **extra}


def postgres_manifest(
    title: str, operations: list[dict[str, Any]], *, secret_bindings: tuple[str, ...] = ("username",)
) -> dict[str, Any]:
    """A ``sql`` manifest on PostgreSQL with basic auth: the credential's server, port,
    database and username (the test server trusts them, so by default no password) are
    bound as ``secret_bindings``."""
    return {
        "title": title,
        "type": "sql",
        "authMethod": "basic_auth",
        "secretBindings": list(secret_bindings),
        "sqlConnectionConfig": {"engine": "postgres"},
        "sqlOperations": operations,
    }


def sqlite_manifest(
    database: str, operations: list[dict[str, Any]], *, security: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A ``sql`` manifest titled Rows on SQLite, without credentials: ``database`` (a file
    in the data directory) seeded from the folder's ``seed.sql``; ``security`` when given."""
    config: dict[str, Any] = {
        "engine": "sqlite",
        "options": {"database": database, "seedFile": "seed.sql"},
    }
    if security is not None:
        config["security"] = security
    return {
        "title": "Rows",
        "type": "sql",
        "authMethod": "none",
        "sqlConnectionConfig": config,
        "sqlOperations": operations,
    }


def write_integration(
    root: Path,
    slug: str,
    manifest: dict[str, Any] | str | None = None,
    connector: str | None = SIMPLE_CONNECTOR,
    extra: dict[str, bytes | str] | None = None,
) -> Path:
    """Write an integration folder; ``manifest`` may be raw text to write invalid JSON."""
    folder = root / slug
    folder.mkdir(parents=True, exist_ok=True)
    if manifest is None:
        manifest = rest_manifest()
    text = manifest if isinstance(manifest, str) else json.dumps(manifest, indent=2)
    (folder / "config.json").write_text(text)
    if connector is not None:
        (folder / "connector.py").write_text(connector)
    for name, data in (extra or {}).items():
        path = folder / name
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)
    return folder
