"""Request dependencies: the runtime and bearer-token authentication with roles."""

from __future__ import annotations

from bollard.platform import auth
from bollard.platform.api.errors import ApiError
from bollard.platform.runtime import Runtime
from fastapi import Depends, Request


def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


async def principal(request: Request, runtime: Runtime = Depends(get_runtime)) -> auth.Principal:
    """The caller from ``Authorization: Bearer <token>``; 401 when missing or unknown."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(
            401,
            "unauthorized",
            "send 'Authorization: Bearer <token>' (create one with: bollard token create --role admin)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    found = await runtime.tokens.authenticate(token.strip())
    if found is None:
        raise ApiError(
            401, "unauthorized", "unknown or revoked token", headers={"WWW-Authenticate": "Bearer"}
        )
    return found


async def admin(p: auth.Principal = Depends(principal)) -> auth.Principal:
    """Only tokens of role ``admin`` pass; others get 403."""
    if not p.is_admin:
        raise ApiError(403, "forbidden", "this action needs an admin token; agent tokens cannot do it")
    return p
