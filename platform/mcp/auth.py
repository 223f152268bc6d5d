"""Who calls over MCP: Bollard's bearer tokens through the SDK's ``TokenVerifier`` (DESIGN §9).

Over streamable HTTP the SDK's bearer middleware asks :class:`BollardTokenVerifier` for
every request; a token of role ``agent`` or ``admin`` (``platform/tokens.py``) becomes an
``AccessToken`` whose ``client_id`` and ``subject`` are the token's id and whose one scope
is its role. The token itself is never kept in it (nothing downstream needs it, and an
``AccessToken`` may end up in a log). A request without a valid token gets the SDK's 401
challenge, ``WWW-Authenticate: Bearer … resource_metadata="<base>/.well-known/
oauth-protected-resource/mcp"``, whose document names Bollard itself as the authorization
server (``transport.py``). Over stdio one principal, given by flag or environment, runs
every request (:func:`principal_from_token`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken

from bollard.platform.tokens import ROLES, Principal

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext

    from bollard.platform.runtime import Runtime

MCP_ROLES = ("agent", "admin")  # both may call tools (DESIGN §8); a new role must opt in here


class BollardTokenVerifier:
    """The SDK ``TokenVerifier`` over the runtime's token cache (one lookup per token and
    ``cache_ttl_s``). ``None`` for unknown, revoked or malformed tokens and for roles
    outside :data:`MCP_ROLES`."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def verify_token(self, token: str) -> AccessToken | None:
        found = await self.runtime.tokens.authenticate(token.strip())
        if found is None or found.role not in MCP_ROLES:
            return None
        return AccessToken(
            token="",  # never kept: see the module docstring
            client_id=found.token_id,
            scopes=[found.role],
            subject=found.token_id,
            claims={"role": found.role, "name": found.name},
        )


def principal_from_access(access: AccessToken) -> Principal | None:
    """The :class:`Principal` an ``AccessToken`` of :class:`BollardTokenVerifier` stands for."""
    claims: dict[str, Any] = access.claims or {}
    role = claims.get("role")
    if role not in ROLES:
        return None
    return Principal(token_id=access.client_id, name=str(claims.get("name") or ""), role=role)


def request_principal(ctx: ServerRequestContext[Any, Any]) -> Principal | None:
    """The authenticated caller of one HTTP request: the SDK's auth context variable, or
    the Starlette request's ``user`` when the handler runs outside that context."""
    access = get_access_token()
    if access is None and ctx.request is not None:
        user = getattr(ctx.request, "scope", {}).get("user")
        access = user.access_token if isinstance(user, AuthenticatedUser) else None
    return principal_from_access(access) if access is not None else None


async def principal_from_token(runtime: Runtime, token: str) -> Principal:
    """The principal of ``token`` for ``bollard mcp`` on stdio.

    Raises ``ValueError`` (the CLI prints it) when the token is unknown or revoked, or its
    role may not use MCP.
    """
    found = await runtime.tokens.authenticate(token.strip())
    if found is None:
        raise ValueError(
            "unknown or revoked token; create one with: bollard token create --role agent "
            "and pass it with --token or BOLLARD_TOKEN"
        )
    if found.role not in MCP_ROLES:
        raise ValueError(f"a token of role '{found.role}' may not use MCP (roles: {', '.join(MCP_ROLES)})")
    return found
