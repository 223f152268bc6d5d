"""The credential store: encryption at rest, the key file, and key rotation (DESIGN §7)."""

from __future__ import annotations

import asyncio
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from bollard.platform.cli import main
from bollard.platform.credentials import CredentialStore, load_or_create_key_file
from bollard.platform.events import Event
from bollard.platform.runtime import Runtime
from bollard.platform.settings import Settings
from bollard.platform.store.db import create_engine, migrate
from bollard.platform.store.tables import credentials


async def store_for(data_dir: Path) -> CredentialStore:
    engine = create_engine(f"sqlite+aiosqlite:///{data_dir / 'bollard.db'}")
    await migrate(engine)
    return CredentialStore(engine, load_or_create_key_file(data_dir / "secret.key"))


async def test_key_file_is_private_and_values_are_encrypted(data_dir: Path) -> None:
    store = await store_for(data_dir)
    mode = stat.S_IMODE((data_dir / "secret.key").stat().st_mode)
    assert mode == 0o600
    await store.put("gh", "default", {"accessToken": "ghp_plaintext_value"})
    async with store._engine.connect() as conn:
        raw = (await conn.execute(select(credentials.c.ciphertext))).scalar_one()
    assert b"ghp_plaintext_value" not in raw
    assert await store.get("gh") == {"accessToken": "ghp_plaintext_value"}
    other = CredentialStore(store._engine, [Fernet.generate_key().decode()])
    with pytest.raises(Exception, match="cannot be decrypted"):
        await other.get("gh")
    await store._engine.dispose()


def test_rotate_key_reencrypts_everything(data_dir: Path) -> None:
    async def fill() -> None:
        store = await store_for(data_dir)
        for i in range(5):
            await store.put(f"int{i}", "default", {"apiKey": f"value-{i}"})
        await store._engine.dispose()

    asyncio.run(fill())
    old = (data_dir / "secret.key").read_text()
    assert main(["rotate-key", "--data-dir", str(data_dir)]) == 0
    new = (data_dir / "secret.key").read_text()
    assert new != old and len(new.strip().splitlines()) == 1

    async def check() -> None:
        store = await store_for(data_dir)
        for i in range(5):
            assert await store.get(f"int{i}") == {"apiKey": f"value-{i}"}
        only_old = CredentialStore(store._engine, [old.strip()])
        with pytest.raises(Exception, match="cannot be decrypted"):
            await only_old.get("int0")
        await store._engine.dispose()

    asyncio.run(check())


def test_a_crash_mid_rotation_loses_nothing(data_dir: Path) -> None:
    async def fill() -> None:
        store = await store_for(data_dir)
        for name in ("a", "b", "d", "e"):
            await store.put(name, "default", {"apiKey": f"value-{name}"})
        # a row no key can read stops the rotation half-way, as a crash would
        async with store._engine.begin() as conn:
            await conn.execute(
                credentials.insert().values(
                    integration="c",
                    credential_id="default",
                    ciphertext=b"garbage",
                    keys=[],
                    updated_at=datetime.now(UTC),
                )
            )
        await store._engine.dispose()

    asyncio.run(fill())
    with pytest.raises(Exception, match="cannot be decrypted"):
        main(["rotate-key", "--data-dir", str(data_dir)])
    keys = (data_dir / "secret.key").read_text().split()
    assert len(keys) == 2  # new key first, old key kept until the rotation completes

    async def check_and_fix() -> None:
        store = await store_for(data_dir)
        for name in ("a", "b", "d", "e"):
            assert await store.get(name) == {"apiKey": f"value-{name}"}
        # a and b were re-encrypted under the new key, d and e still under the old one
        new_only = CredentialStore(store._engine, [keys[0]])
        assert await new_only.get("a") == {"apiKey": "value-a"}
        with pytest.raises(Exception, match="cannot be decrypted"):
            await new_only.get("d")
        async with store._engine.begin() as conn:
            await conn.execute(credentials.delete().where(credentials.c.integration == "c"))
        await store._engine.dispose()

    asyncio.run(check_and_fix())
    assert main(["rotate-key", "--data-dir", str(data_dir)]) == 0
    assert len((data_dir / "secret.key").read_text().split()) == 1

    async def check() -> None:
        store = await store_for(data_dir)
        assert await store.get("e") == {"apiKey": "value-e"}
        new_only = CredentialStore(store._engine, [(data_dir / "secret.key").read_text().strip()])
        assert await new_only.get("d") == {"apiKey": "value-d"}
        await store._engine.dispose()

    asyncio.run(check())


async def test_a_rotation_in_a_runtime_is_a_credential_event_per_row(
    integrations_dir: Path, data_dir: Path
) -> None:
    """The runtime's bus (and so, on PostgreSQL, the other replicas) hears of each
    re-encrypted row as of a PUT: caches holding it drop it (DESIGN §12)."""
    settings = Settings(integrations_dir=integrations_dir, data_dir=data_dir, secret_key="old", reload=False)
    async with Runtime(settings) as rt:
        for slug in ("gh", "jira"):
            await rt.credentials.put(slug, "default", {"apiKey": "v"})
        async with rt.events.subscribe("credential") as seen:
            assert await rt.credentials.rotate(Fernet.generate_key().decode()) == 2
            events = [seen.get_nowait() for _ in range(seen.qsize())]
    assert events == [Event("credential", {"slug": s, "credentialId": "default"}) for s in ("gh", "jira")]
