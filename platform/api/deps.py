"""Request dependencies: the runtime, bearer-token authentication with roles, and the
refusal of unknown query parameters."""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bollard.platform import tokens
from bollard.platform.errors import ApiError
from bollard.platform.runtime import Runtime

# Declares the bearer scheme in the OpenAPI document (Swagger's Authorize button); our own
# 401 answers missing or malformed headers, so the scheme itself never raises.
bearer = HTTPBearer(
    auto_error=False,
    description="An API token: create one with `bollard token create --role admin|agent`",
)


async def get_runtime(request: Request) -> Runtime:
    """The app's runtime. ``async`` on purpose: FastAPI runs a plain ``def`` dependency in
    a worker thread, a thread hand-off on every request."""
    runtime: Runtime = request.app.state.runtime
    return runtime


async def principal(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> tokens.Principal:
    """The caller from ``Authorization: Bearer <token>``; 401 ``unauthorized`` when missing or unknown.

    Reads the runtime from the request rather than through ``Depends(get_runtime)``: each
    sub-dependency costs FastAPI a recursive solve per request (docs/perf-profile.md)."""
    runtime: Runtime = request.app.state.runtime
    token = credentials.credentials.strip() if credentials is not None else ""
    if not token:
        raise unauthorized(
            "send 'Authorization: Bearer <token>' (create one with: bollard token create --role admin)"
        )
    found = await runtime.tokens.authenticate(token)
    if found is None:
        raise unauthorized(UNKNOWN_TOKEN)
    return found


UNKNOWN_TOKEN = "unknown or revoked token"


def unauthorized(message: str) -> ApiError:
    """The 401 ``unauthorized`` (with ``WWW-Authenticate: Bearer``) saying ``message``."""
    return ApiError("unauthorized", message, headers={"WWW-Authenticate": "Bearer"}, status=401)


async def admin(p: tokens.Principal = Depends(principal)) -> tokens.Principal:
    """Only tokens of role ``admin`` pass; others get 403."""
    if not p.is_admin:
        raise ApiError("forbidden", "this action needs an admin token; agent tokens cannot do it", status=403)
    return p


def declared_query(route: Any) -> frozenset[str]:
    """The query parameter names ``route`` declares (its own and its dependencies'),
    computed once and kept on the route."""
    names: frozenset[str] | None = getattr(route, "_bollard_query_names", None)
    if names is None:
        found: set[str] = set()
        stack = [route.dependant]
        while stack:  # the route's Dependant tree: its own parameters and its dependencies'
            dep = stack.pop()
            found.update(p.alias for p in dep.query_params)
            stack.extend(dep.dependencies)
        names = frozenset(found)
        route._bollard_query_names = names
    return names


async def known_query(request: Request) -> None:
    """Refuse query parameters the route does not declare, and any given more than once:
    400 ``invalid_request`` naming them and the accepted ones (a misspelt filter must not
    silently return everything).

    Attach it to a router (``APIRouter(dependencies=[Depends(known_query)])``).
    """
    route = request.scope.get("route")
    if route is None or not hasattr(route, "dependant"):
        return
    allowed = declared_query(route)
    unknown = sorted({k for k in request.query_params if k not in allowed})
    if unknown:
        takes = ", ".join(sorted(allowed)) if allowed else "no query parameters"
        raise ApiError(
            "invalid_request",
            f"unknown query parameter{'s' if len(unknown) > 1 else ''} "
            + ", ".join(f"'{u[:60]}'" for u in unknown[:10])
            + f"; {request.method} {route.path} takes: {takes}",
            details=[{"path": f"query.{u[:60]}", "message": "unknown query parameter"} for u in unknown[:10]],
            status=400,
        )
    # No route takes a list in the query: a repeated parameter would silently be read as
    # one of its values (the fuzzer sends arrays as repeated parameters).
    repeated = sorted({k for k in request.query_params if len(request.query_params.getlist(k)) > 1})
    if repeated:
        raise ApiError(
            "invalid_request",
            "query parameter"
            + ("s " if len(repeated) > 1 else " ")
            + ", ".join(f"'{r[:60]}'" for r in repeated[:10])
            + " given more than once; give each once",
            details=[{"path": f"query.{r[:60]}", "message": "given more than once"} for r in repeated[:10]],
            status=400,
        )


# The largest ``offset`` a list route takes: far past any real log, well inside the
# databases' 64-bit integers (a bigger one overflowed SQLite's INTEGER: a 500).
MAX_OFFSET = 1_000_000_000
