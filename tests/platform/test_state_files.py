"""Attack tests for the host's own files (hardening issue item 23, DESIGN §11): the state
database is created 0600 (that ``bollard serve`` prints the admin token only when it
creates it is pinned in tests/cli/test_cli.py)."""

from __future__ import annotations

import stat
from pathlib import Path

from bollard.platform.runtime import Runtime
from bollard.platform.settings import Settings


async def test_state_database_is_created_private(integrations_dir: Path, data_dir: Path) -> None:
    settings = Settings(integrations_dir=integrations_dir, data_dir=data_dir, secret_key="k", reload=False)
    async with Runtime(settings):
        pass
    mode = stat.S_IMODE((data_dir / "bollard.db").stat().st_mode)
    assert mode == 0o600, oct(mode)


async def test_an_existing_state_database_is_made_private(integrations_dir: Path, data_dir: Path) -> None:
    db = data_dir / "bollard.db"
    db.touch()
    db.chmod(0o644)
    settings = Settings(integrations_dir=integrations_dir, data_dir=data_dir, secret_key="k", reload=False)
    async with Runtime(settings):
        pass
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
