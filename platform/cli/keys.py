"""``bollard rotate-key``: re-encrypt every credential under a new key (DESIGN §7)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from typing import Any

from bollard.platform.cli.common import add_data_dir, settings_from


def cmd_rotate_key(args: argparse.Namespace) -> int:
    """Re-encrypt every credential under a new key; exit 0.

    With the key file: the new key is written first, next to the old one (so a crash
    leaves every value readable with one of the two), the rows are re-encrypted, then
    the old key is dropped from the file. With ``BOLLARD_SECRET_KEY``: pass
    ``--new-key``; afterwards set ``BOLLARD_SECRET_KEY`` to the new key. With a PostgreSQL
    state database each re-encrypted credential is announced as a ``credential`` event
    (as a credentials ``PUT`` is), so running servers drop their cached values at once.
    """
    # lazy: keeps CLI start-up fast
    from cryptography.fernet import Fernet

    from bollard.platform.credentials import CredentialStore, write_key_file
    from bollard.platform.pg_events import notify_replicas
    from bollard.platform.runtime import KEY_FILE, secret_keys
    from bollard.platform.store.db import create_engine, migrate

    settings = settings_from(args)
    old_keys = secret_keys(settings)
    new_key = args.new_key or Fernet.generate_key().decode()
    key_file = settings.data_dir / KEY_FILE
    if not settings.secret_key:
        write_key_file(key_file, [new_key, *[k for k in old_keys if k != new_key]])

    async def main() -> tuple[int, bool]:
        engine = create_engine(settings.resolved_database_url())
        try:
            await migrate(engine)
            store = CredentialStore(engine, old_keys)
            changed: list[dict[str, str]] = []
            store.on_change = lambda slug, cid: changed.append({"slug": slug, "credentialId": cid})
            try:
                count = await store.rotate(new_key)
            except BaseException:  # the rows already rewritten are announced all the same
                with contextlib.suppress(Exception):
                    await notify_replicas(engine, "credential", *changed)
                raise
            if not settings.secret_key:
                write_key_file(key_file, [new_key])
            # the credential event of a PUT, one per row: running servers drop what they
            # cached at once, not after BOLLARD_CACHE_TTL_S (DESIGN §12)
            return count, await notify_replicas(engine, "credential", *changed)
        finally:
            await engine.dispose()

    count, told = asyncio.run(main())
    servers = "running servers drop their cached values " + (
        "at once" if told else "within BOLLARD_CACHE_TTL_S seconds"
    )
    if settings.secret_key:
        print(
            f"re-encrypted {count} credential(s); now set BOLLARD_SECRET_KEY to the new key ({servers})",
            file=sys.stderr,
        )
        if not args.new_key:
            print(new_key)
    else:
        print(f"re-encrypted {count} credential(s) under a new key in {key_file}; {servers}", file=sys.stderr)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("rotate-key", help="re-encrypt every credential under a new key")
    p.add_argument("--new-key", help="the new key (default: a fresh Fernet key)")
    add_data_dir(p)
    p.set_defaults(func=cmd_rotate_key)
