"""Encrypted credential store (DESIGN §7).

Values are kept as one Fernet token per (integration, credential id) holding the JSON
object of values; the key names are stored in clear so listing needs no decryption. The
key comes from ``BOLLARD_SECRET_KEY`` or ``<data_dir>/secret.key`` (created with mode
0600). A :class:`~cryptography.fernet.MultiFernet` decrypts with every known key so key
rotation never strands a value.

A running server picks up a key file that ``bollard rotate-key`` rewrote (DESIGN §11)
without a restart: a write first checks whether the file changed (one ``stat``), and a
value no key in memory can decrypt makes the store re-read the file and retry once, at
most once per :data:`KEY_RELOAD_INTERVAL_S`. ``BOLLARD_SECRET_KEY`` cannot change in a
running process, so a server configured with it must be restarted.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bollard.platform.errors import CredentialError
from bollard.platform.store.tables import credentials as credentials_table

CREDENTIAL_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
DEFAULT_CREDENTIAL_ID = "default"
# A bad key must not make every call re-read the key file.
KEY_RELOAD_INTERVAL_S = 1.0
UNREADABLE_HINT_FILE = (
    "the key file was replaced by one that cannot read them; restore the old secret.key, "
    "or run 'bollard rotate-key' with the old key in place"
)
UNREADABLE_HINT_ENV = (
    "BOLLARD_SECRET_KEY was changed, or 'bollard rotate-key' re-encrypted them under a new key: "
    "restart with BOLLARD_SECRET_KEY set to the key they were encrypted with"
)


def fernet_from_secret(secret: str) -> Fernet:
    """A Fernet for ``secret``: a Fernet key as is, any other string through SHA-256."""
    try:
        return Fernet(secret.encode())
    except (ValueError, TypeError):
        digest = hashlib.sha256(secret.encode()).digest()
        return Fernet(base64.urlsafe_b64encode(digest))


def read_key_file(path: Path) -> list[str]:
    """The keys in the key file, primary first; ``[]`` when it is missing or empty."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    return [line.strip() for line in text.splitlines() if line.strip()]


def load_or_create_key_file(path: Path) -> list[str]:
    """The keys in the key file, primary first (one per line), creating the file (mode
    0600, one fresh Fernet key) when missing. Several lines exist only during a rotation."""
    keys = read_key_file(path)
    if keys:
        return keys
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key().decode()
    write_key_file(path, [key])
    return [key]


def write_key_file(path: Path, keys: list[str]) -> None:
    """Atomically replace the key file (mode 0600) with ``keys``, primary first."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("\n".join(keys) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def split_keys(value: str) -> list[str]:
    """``BOLLARD_SECRET_KEY`` may list several keys, comma-separated, primary first."""
    return [k.strip() for k in value.split(",") if k.strip()]


def check_credential_id(credential_id: str) -> None:
    """Raise ``CredentialError('invalid_params')`` for an id that is not ``[A-Za-z0-9_.-]{1,64}``."""
    if not CREDENTIAL_ID_RE.match(credential_id):
        raise CredentialError(
            "invalid_params",
            f"credentialId '{credential_id[:80]}' is not valid: use 1-64 letters, digits, '_', '.', '-'",
        )


@dataclass(frozen=True)
class CredentialInfo:
    """What may be shown about a credential: its id, which keys are set, when."""

    credential_id: str
    keys: list[str]
    updated_at: datetime


class CredentialStore:
    """Encrypted values per (integration, credential id) in the state database."""

    def __init__(
        self,
        engine: AsyncEngine,
        keys: Iterable[str],
        *,
        cache_ttl_s: float = 2.0,
        key_file: Path | None = None,
    ) -> None:
        """``keys``: primary first. ``key_file``: where they came from, re-read when it
        changes (see the module docstring); ``None`` for ``BOLLARD_SECRET_KEY``."""
        self._keys = list(keys)
        if not self._keys:
            raise ValueError("at least one key is needed")
        self._engine = engine
        self._set_keys(self._keys)
        self._key_file = key_file
        self._key_file_stat = self._stat_key_file()
        self._last_reload = float("-inf")  # the first failure may always re-read
        # Decrypted values for a short time: a read and a decryption per call cost more
        # than the call itself. Writes here invalidate at once; another replica's write
        # is dropped when its credential event arrives (DESIGN §12, platform/replicas.py)
        # or after at most ``cache_ttl_s`` (0 disables the cache).
        self._cache: dict[tuple[str, str], tuple[float, dict[str, str] | None]] = {}
        self._cache_ttl_s = cache_ttl_s
        # bumped by every forget: a read that raced a change is not cached
        self._generation = 0
        #: called with (integration, credential id) after values were set or deleted here
        self.on_change: Callable[[str, str], None] | None = None

    def _set_keys(self, keys: list[str]) -> None:
        self._keys = keys
        self._ferns = [fernet_from_secret(k) for k in keys]
        self._fernet = MultiFernet(self._ferns)

    def _stat_key_file(self) -> tuple[int, int, int] | None:
        if self._key_file is None:
            return None
        try:
            st = self._key_file.stat()
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def reload_keys(self) -> bool:
        """Re-read the key file; ``True`` when that changed the keys in memory.

        The file's keys come first (its first is the new primary); keys only in memory
        are kept after them, so a value another replica wrote mid-rotation stays readable.
        """
        self._last_reload = time.monotonic()
        self._key_file_stat = self._stat_key_file()
        fresh = read_key_file(self._key_file) if self._key_file is not None else []
        if not fresh:
            return False
        keys = fresh + [k for k in self._keys if k not in fresh]
        if keys == self._keys:
            return False
        self._set_keys(keys)
        return True

    def encrypt(self, values: dict[str, str]) -> bytes:
        """A Fernet token of ``values`` under the primary key (re-read first when the key
        file changed, so a write after a rotation never uses the retired key)."""
        if self._key_file is not None and self._stat_key_file() != self._key_file_stat:
            self.reload_keys()
        return self._fernet.encrypt(json.dumps(values, sort_keys=True).encode())

    def decrypt(self, token: bytes) -> dict[str, str]:
        """The values in ``token``; raises ``CredentialError('credentials_unreadable')``
        when no key can decrypt it, even after re-reading the key file."""
        try:
            data = json.loads(self._fernet.decrypt(token))
        except InvalidToken:
            if not self._may_reload() or not self.reload_keys():
                raise self.unreadable() from None
            try:
                data = json.loads(self._fernet.decrypt(token))
            except InvalidToken:
                raise self.unreadable() from None
        return {str(k): str(v) for k, v in data.items()}

    def _may_reload(self) -> bool:
        """Re-read after a failed decryption when the file changed or a second has passed."""
        if self._key_file is None:
            return False
        changed = self._stat_key_file() != self._key_file_stat
        return changed or time.monotonic() - self._last_reload >= KEY_RELOAD_INTERVAL_S

    def unreadable(self, what: str = "stored credentials") -> CredentialError:
        """The ``credentials_unreadable`` error, saying what to do for this key source."""
        hint = UNREADABLE_HINT_FILE if self._key_file is not None else UNREADABLE_HINT_ENV
        return CredentialError(
            "credentials_unreadable", f"{what} cannot be decrypted with the configured key: {hint}"
        )

    async def get(
        self, integration: str, credential_id: str = DEFAULT_CREDENTIAL_ID
    ) -> dict[str, str] | None:
        """The decrypted values (a copy), or ``None`` when nothing is stored for that id."""
        key = (integration, credential_id)
        cached = self._cache.get(key)
        if cached is not None and time.monotonic() - cached[0] < self._cache_ttl_s:
            return dict(cached[1]) if cached[1] is not None else None
        generation = self._generation
        values = await self._read(integration, credential_id)
        if self._cache_ttl_s > 0 and generation == self._generation:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (time.monotonic(), values)
        return dict(values) if values is not None else None

    def forget(self, integration: str, credential_id: str | None = None) -> None:
        """Drop cached values (all credential ids of ``integration`` when none given)."""
        self._generation += 1
        for key in [k for k in self._cache if k[0] == integration and credential_id in (None, k[1])]:
            self._cache.pop(key, None)

    def forget_all(self) -> None:
        """Drop every cached value (after missed events from other replicas)."""
        self._generation += 1
        self._cache.clear()

    def _changed(self, integration: str, credential_id: str) -> None:
        self.forget(integration, credential_id)
        if self.on_change is not None:
            self.on_change(integration, credential_id)

    async def _read(self, integration: str, credential_id: str) -> dict[str, str] | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(credentials_table.c.ciphertext).where(
                        credentials_table.c.integration == integration,
                        credentials_table.c.credential_id == credential_id,
                    )
                )
            ).first()
        return None if row is None else self.decrypt(row[0])

    async def describe(self, integration: str) -> list[CredentialInfo]:
        """Every credential id of an integration with the keys it sets (no values)."""
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(
                        credentials_table.c.credential_id,
                        credentials_table.c["keys"],
                        credentials_table.c.updated_at,
                    )
                    .where(credentials_table.c.integration == integration)
                    .order_by(credentials_table.c.credential_id)
                )
            ).all()
        return [CredentialInfo(r[0], list(r[1]), r[2]) for r in rows]

    async def put(
        self,
        integration: str,
        credential_id: str,
        values: dict[str, str],
        *,
        merge: bool = True,
        empty_is_value: Collection[str] = (),
    ) -> list[str]:
        """Store values (merged over existing ones unless ``merge=False``).

        An empty-string value removes that key, except for the keys in
        ``empty_is_value`` (e.g. a SQL ``password``), where it is stored. Returns the key
        names now set. A merge that changes the connection's target (server, port,
        database, username, TLS settings, a URL/domain/host key) without entering the
        stored secrets again is refused with ``invalid_params`` (details ``{"changed",
        "reenter"}``) and changes nothing: a stored secret is never carried to a new
        target (DESIGN §5, §7).
        """
        from bollard.platform.credential_fields import not_carried_message, secrets_not_carried

        check_credential_id(credential_id)
        current = (await self.get(integration, credential_id)) if merge else None
        changed, reenter = secrets_not_carried(current or {}, values)
        if reenter:
            raise CredentialError(
                "invalid_params",
                not_carried_message(changed, reenter),
                details={"changed": changed, "reenter": reenter},
            )
        merged = dict(current or {})
        for k, v in values.items():
            if v == "" and k not in empty_is_value:
                merged.pop(k, None)
            else:
                merged[k] = v
        now = datetime.now(UTC)
        row = {
            "integration": integration,
            "credential_id": credential_id,
            "ciphertext": self.encrypt(merged),
            "keys": sorted(merged),
            "updated_at": now,
        }
        async with self._engine.begin() as conn:
            await conn.execute(
                delete(credentials_table).where(
                    credentials_table.c.integration == integration,
                    credentials_table.c.credential_id == credential_id,
                )
            )
            await conn.execute(credentials_table.insert().values(**row))
        self._changed(integration, credential_id)
        return sorted(merged)

    async def rotate(self, new_key: str) -> int:
        """Re-encrypt every credential under ``new_key`` (DESIGN §7); return how many.

        The caller must already have made ``new_key`` durable next to the old keys, so a
        crash in the middle leaves each row readable with one of them; every row is
        rewritten in its own transaction. Raises :class:`CredentialError` when a row
        cannot be decrypted with any known key (nothing is changed for that row). Each
        rewritten row is a change (``on_change``: the ``credential`` event, DESIGN §12),
        so caches holding it, here and on other replicas, re-read it under the new key.
        """
        rotating = MultiFernet([fernet_from_secret(new_key), *self._ferns])
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(
                        credentials_table.c.integration,
                        credentials_table.c.credential_id,
                        credentials_table.c.ciphertext,
                    ).order_by(credentials_table.c.integration, credentials_table.c.credential_id)
                )
            ).all()
        for integration, credential_id, token in rows:
            try:
                new_token = rotating.rotate(token)
            except InvalidToken:
                raise CredentialError(
                    "credentials_unreadable",
                    f"credential '{credential_id}' of '{integration}' cannot be decrypted with any known key",
                ) from None
            async with self._engine.begin() as conn:
                await conn.execute(
                    credentials_table.update()
                    .where(
                        credentials_table.c.integration == integration,
                        credentials_table.c.credential_id == credential_id,
                    )
                    .values(ciphertext=new_token)
                )
            self._changed(integration, credential_id)
        self._set_keys([new_key])
        self._cache.clear()
        return len(rows)

    async def delete(self, integration: str, credential_id: str) -> bool:
        """Remove a credential; ``True`` when one existed."""
        async with self._engine.begin() as conn:
            result = await conn.execute(
                delete(credentials_table).where(
                    credentials_table.c.integration == integration,
                    credentials_table.c.credential_id == credential_id,
                )
            )
        if result.rowcount:
            self._changed(integration, credential_id)
        return bool(result.rowcount)
