"""API tokens (DESIGN §8): list, create (the token is shown once), revoke. Admin only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from bollard.platform import tokens
from bollard.platform.api.deps import admin, get_runtime, known_query
from bollard.platform.api.openapi import ADMIN, BODY, errors
from bollard.platform.errors import ApiError
from bollard.platform.runtime import Runtime

router = APIRouter(prefix="/api/tokens", tags=["tokens"], dependencies=[Depends(known_query)])


class CreateToken(BaseModel):
    """Body of ``POST /api/tokens``."""

    role: tokens.Role
    name: str = Field("", max_length=200, description="a label shown in the list")


@router.get(
    "",
    summary="Every token: id, name, role, created, last used (never the token)",
    responses=errors(*ADMIN),
)
async def list_tokens(
    runtime: Runtime = Depends(get_runtime), _: tokens.Principal = Depends(admin)
) -> dict[str, Any]:
    items = [t.to_json() for t in await tokens.list_tokens(runtime.db)]
    return {"tokens": items, "count": len(items)}


@router.post(
    "",
    status_code=201,
    summary="Create a token; the answer is the only time it is shown",
    responses=errors(*ADMIN, *BODY),
)
async def create_token(
    body: CreateToken, runtime: Runtime = Depends(get_runtime), _: tokens.Principal = Depends(admin)
) -> dict[str, Any]:
    info, token = await tokens.new_token(runtime.db, body.role, body.name)
    return {**info.to_json(), "token": token}


@router.delete(
    "/{token_id}",
    summary="Revoke a token (other replicas refuse it within BOLLARD_CACHE_TTL_S)",
    responses=errors(*ADMIN, "not_found"),
)
async def revoke_token(
    token_id: str, runtime: Runtime = Depends(get_runtime), _: tokens.Principal = Depends(admin)
) -> dict[str, Any]:
    if not await runtime.tokens.revoke(token_id):
        raise ApiError("not_found", f"no token with id '{token_id[:80]}'", status=404)
    return {"id": token_id, "revoked": True}
