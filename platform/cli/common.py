"""Helpers every ``bollard`` subcommand shares: settings from flags, JSON output."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

from bollard.platform.settings import Settings


def settings_from(args: argparse.Namespace) -> Settings:
    """Settings from the environment (``BOLLARD_*``), overridden by ``--integrations``
    and ``--data-dir`` when the command has them."""
    overrides: dict[str, Any] = {}
    if getattr(args, "integrations", None):
        overrides["integrations_dir"] = Path(args.integrations)
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = Path(args.data_dir)
    return Settings(**overrides)


def add_dirs(p: argparse.ArgumentParser) -> None:
    """``--integrations DIR`` and ``--data-dir DIR``."""
    p.add_argument(
        "--integrations",
        metavar="DIR",
        help="integrations directory (default: BOLLARD_INTEGRATIONS_DIR or ./integrations)",
    )
    add_data_dir(p)


def add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data-dir", metavar="DIR", help="data directory (default: BOLLARD_DATA_DIR or ./.bollard)"
    )


def print_json(value: Any, *, file: Any = None) -> None:
    """Pretty JSON on stdout (or ``file``); datetimes and other objects as strings."""
    print(json.dumps(value, indent=2, default=str), file=file or sys.stdout)


def error_json(code: str, message: str) -> dict[str, Any]:
    """The API's error shape, ``{"error": {"code", "message"}}`` (DESIGN §8)."""
    return {"error": {"code": code, "message": message}}


def read_only_engine(settings: Settings) -> AsyncEngine | None:
    """An engine that cannot create or change the state database, or ``None`` when there
    is none yet. SQLite is opened with ``mode=ro``; other databases are only read from."""
    # lazy: keeps CLI start-up fast
    from sqlalchemy.engine import make_url

    from bollard.platform.store.db import create_engine

    url = make_url(settings.resolved_database_url())
    if not url.drivername.startswith("sqlite"):
        return create_engine(url.render_as_string(hide_password=False))
    if not url.database or url.database == ":memory:" or not Path(url.database).is_file():
        return None
    path = Path(url.database).resolve()
    return create_engine(f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true")
