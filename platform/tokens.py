"""API tokens with roles (DESIGN §8): stored as SHA-256 hashes, shown once at creation."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from bollard.platform.store.tables import api_tokens
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

Role = Literal["admin", "agent"]
ROLES: tuple[Role, ...] = ("admin", "agent")
TOKEN_PREFIX = "bol_"


@dataclass(frozen=True)
class Principal:
    """Who is calling: the token's id, name and role."""

    token_id: str
    name: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(engine: AsyncEngine, role: Role, name: str = "") -> str:
    """Create a token of ``role`` and return it; only its hash is stored.

    Raises ``ValueError`` for an unknown role.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    async with engine.begin() as conn:
        await conn.execute(
            api_tokens.insert().values(
                id=str(uuid.uuid4()),
                name=name,
                role=role,
                token_hash=hash_token(token),
                created_at=datetime.now(UTC),
            )
        )
    return token


async def count_tokens(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(api_tokens))).scalar_one())


async def authenticate(engine: AsyncEngine, token: str) -> Principal | None:
    """The principal for a presented token, or ``None`` when unknown."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    digest = hash_token(token)
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(api_tokens.c.id, api_tokens.c.name, api_tokens.c.role).where(
                    api_tokens.c.token_hash == digest
                )
            )
        ).first()
    if row is None:
        return None
    return Principal(token_id=row[0], name=row[1], role=row[2])


class TokenCache:
    """Authenticated tokens for a short time, so a request costs no database read.

    A token created here is found at once; a deleted one stops working after at most
    ``ttl_s`` seconds. Unknown tokens are not cached (each try is looked up).
    """

    def __init__(self, engine: AsyncEngine, *, ttl_s: float = 2.0) -> None:
        self._engine = engine
        self._ttl_s = ttl_s
        self._known: dict[str, tuple[float, Principal]] = {}

    async def authenticate(self, token: str) -> Principal | None:
        digest = hash_token(token)
        hit = self._known.get(digest)
        if hit is not None and time.monotonic() - hit[0] < self._ttl_s:
            return hit[1]
        found = await authenticate(self._engine, token)
        if found is not None and self._ttl_s > 0:
            if len(self._known) > 10_000:
                self._known.clear()
            self._known[digest] = (time.monotonic(), found)
        return found
