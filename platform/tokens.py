"""API tokens with roles (DESIGN §8): stored as SHA-256 hashes, shown once at creation.

Listing shows a token's id, name, role, creation and last use, never the token; revoking
deletes it. ``last_used_at`` is written at most once a minute per token and process, so
authenticating costs no write per request.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from bollard.platform.store.tables import api_tokens
from bollard.platform.timestamps import iso_utc

log = logging.getLogger("bollard.tokens")

Role = Literal["admin", "agent"]
ROLES: tuple[Role, ...] = ("admin", "agent")
TOKEN_PREFIX = "bol_"
LAST_USED_INTERVAL_S = 60.0  # how often a token's last use is written, at most


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


@dataclass(frozen=True)
class TokenInfo:
    """What may be shown about a token: never the token itself nor its hash."""

    id: str
    name: str
    role: Role
    created_at: datetime
    last_used_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        """``{id, name, role, createdAt, lastUsedAt}`` with ISO 8601 UTC timestamps."""
        return {
            "id": self.id,
            "name": self.name,
            "role": self.role,
            "createdAt": iso_utc(self.created_at),
            "lastUsedAt": iso_utc(self.last_used_at),
        }


async def new_token(engine: AsyncEngine, role: Role, name: str = "") -> tuple[TokenInfo, str]:
    """Create a token of ``role``; return its description and the token (shown once; only
    its hash is stored).

    Raises ``ValueError`` for an unknown role or a name over 200 characters.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if len(name) > 200:
        raise ValueError("name must be at most 200 characters")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    info = TokenInfo(str(uuid.uuid4()), name, role, datetime.now(UTC), None)
    async with engine.begin() as conn:
        await conn.execute(
            api_tokens.insert().values(
                id=info.id,
                name=name,
                role=role,
                token_hash=hash_token(token),
                created_at=info.created_at,
            )
        )
    return info, token


async def create_token(engine: AsyncEngine, role: Role, name: str = "") -> str:
    """Create a token of ``role`` and return it; see :func:`new_token`."""
    return (await new_token(engine, role, name))[1]


async def list_tokens(engine: AsyncEngine) -> list[TokenInfo]:
    """Every token, oldest first."""
    c = api_tokens.c
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(c.id, c.name, c.role, c.created_at, c.last_used_at).order_by(c.created_at, c.id)
            )
        ).all()
    return [TokenInfo(r[0], r[1], r[2], r[3], r[4]) for r in rows]


async def revoke_token(engine: AsyncEngine, token_id: str) -> bool:
    """Delete the token ``token_id``; ``True`` when it existed. Other processes' caches
    drop it within their ``cache_ttl_s`` (:class:`TokenCache`)."""
    async with engine.begin() as conn:
        result = await conn.execute(delete(api_tokens).where(api_tokens.c.id == token_id))
    return bool(result.rowcount)


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

    A token created here is found at once; one revoked through :meth:`revoke` stops
    working at once in this process and, through its token event, in the other replicas
    (after at most ``ttl_s`` seconds should the event be missed).
    Unknown tokens are not cached (each try is looked up). A token's ``last_used_at`` is
    written at most every ``LAST_USED_INTERVAL_S`` seconds per process.
    """

    def __init__(self, engine: AsyncEngine, *, ttl_s: float = 2.0) -> None:
        self._engine = engine
        self._ttl_s = ttl_s
        self._known: dict[str, tuple[float, Principal]] = {}
        self._last_written: dict[str, float] = {}  # token id -> monotonic time of the last write
        self._generation = 0  # bumped by every forget: a lookup that raced a revoke is not cached
        #: called with the token id after a token was revoked here (DESIGN §12: other
        #: replicas drop it at once, platform/replicas.py)
        self.on_change: Callable[[str], None] | None = None

    async def authenticate(self, token: str) -> Principal | None:
        digest = hash_token(token)
        hit = self._known.get(digest)
        if hit is not None and time.monotonic() - hit[0] < self._ttl_s:
            found: Principal | None = hit[1]
        else:
            generation = self._generation
            found = await authenticate(self._engine, token)
            if found is not None and self._ttl_s > 0 and generation == self._generation:
                if len(self._known) > 10_000:
                    self._known.clear()
                self._known[digest] = (time.monotonic(), found)
        if found is not None:
            await self._mark_used(found.token_id)
        return found

    async def _mark_used(self, token_id: str) -> None:
        now = time.monotonic()
        last = self._last_written.get(token_id)
        if last is not None and now - last < LAST_USED_INTERVAL_S:
            return
        if len(self._last_written) > 10_000:
            self._last_written.clear()
        self._last_written[token_id] = now
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    update(api_tokens)
                    .where(api_tokens.c.id == token_id)
                    .values(last_used_at=datetime.now(UTC))
                )
        except SQLAlchemyError as e:  # recording use must never refuse a valid token
            log.warning("could not record the last use of token %s: %s", token_id, type(e).__name__)

    def forget(self, token_id: str) -> None:
        """Drop ``token_id`` from this process's cache."""
        self._generation += 1
        for digest in [d for d, (_, p) in self._known.items() if p.token_id == token_id]:
            self._known.pop(digest, None)
        self._last_written.pop(token_id, None)

    async def revoke(self, token_id: str) -> bool:
        """Delete the token and drop it from this cache at once; ``True`` when it existed."""
        found = await revoke_token(self._engine, token_id)
        self.forget(token_id)
        if found and self.on_change is not None:
            self.on_change(token_id)
        return found

    def forget_all(self) -> None:
        """Drop every cached token (after missed events from other replicas)."""
        self._generation += 1
        self._known.clear()
