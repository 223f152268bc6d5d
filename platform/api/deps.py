"""Request dependencies: the runtime and bearer-token authentication with roles."""

from __future__ import annotations

from bollard.platform import tokens
from bollard.platform.errors import ApiError
from bollard.platform.runtime import Runtime
from fastapi import Depends, Request


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def principal(request: Request, runtime: Runtime = Depends(get_runtime)) -> tokens.Principal:
    """The caller from ``Authorization: Bearer <token>``; 401 when missing or unknown."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            "unauthorized",
            "send 'Authorization: Bearer <token>' (create one with: bollard token create --role admin)",
            headers={"WWW-Authenticate": "Bearer"},
            status=401,
        )
    found = await runtime.tokens.authenticate(token.strip())
    if found is None:
        raise ApiError(
            "unauthorized", "unknown or revoked token", headers={"WWW-Authenticate": "Bearer"}, status=401
        )
    return found


async def admin(p: tokens.Principal = Depends(principal)) -> tokens.Principal:
    """Only tokens of role ``admin`` pass; others get 403."""
    if not p.is_admin:
        raise ApiError("forbidden", "this action needs an admin token; agent tokens cannot do it", status=403)
    return p
