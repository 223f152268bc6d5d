"""Catalog, detail, icon and credentials of integrations (DESIGN §8)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from pydantic import BaseModel, Field

from bollard.platform import catalog, tokens
from bollard.platform.api.deps import admin, get_runtime, known_query, principal
from bollard.platform.api.openapi import ADMIN, AUTH, BODY, errors
from bollard.platform.credential_fields import empty_is_value
from bollard.platform.credentials import DEFAULT_CREDENTIAL_ID, check_credential_id
from bollard.platform.errors import ApiError
from bollard.platform.packages import ICON_MEDIA_TYPES
from bollard.platform.runtime import Runtime

router = APIRouter(prefix="/api/integrations", tags=["integrations"], dependencies=[Depends(known_query)])

ICON_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"


@router.get("", summary="The catalog of installed integrations", responses=errors(*AUTH))
async def list_integrations(
    runtime: Runtime = Depends(get_runtime), _: tokens.Principal = Depends(principal)
) -> dict[str, Any]:
    items = await catalog.catalog(runtime.registry, runtime.credentials)
    return {"integrations": items, "count": len(items)}


@router.get(
    "/{slug}",
    summary="One integration: operations, parameter schemas, secrets set",
    responses=errors(*AUTH, "unknown_integration"),
)
async def get_integration(
    slug: str, runtime: Runtime = Depends(get_runtime), _: tokens.Principal = Depends(principal)
) -> dict[str, Any]:
    return await catalog.detail(runtime.registry, runtime.credentials, slug)


@router.get(
    "/{slug}/icon",
    summary="The integration's icon",
    response_class=Response,
    responses={
        200: {
            "description": "the icon file",
            "content": {
                t: {"schema": {"type": "string", "format": "binary"}} for t in ICON_MEDIA_TYPES.values()
            },
        },
        **errors(*AUTH, "unknown_integration", "not_found", "integration_error"),
    },
)
async def get_icon(
    slug: str, runtime: Runtime = Depends(get_runtime), _: tokens.Principal = Depends(principal)
) -> Response:
    version = runtime.registry.require_version(slug)
    name = version.icon_name
    if name is None:
        raise ApiError("not_found", f"integration '{slug}' has no icon", status=404)
    return Response(
        version.files[name],
        media_type=ICON_MEDIA_TYPES[name.rsplit(".", 1)[1]],
        headers={
            "Content-Security-Policy": ICON_CSP,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "private, max-age=60",
        },
    )


class CredentialValues(BaseModel):
    """Body of ``PUT …/credentials``: ``{"values": {"apiKey": "…"}}``. An empty string
    removes a key, except a SQL integration's ``password``, where it is the value."""

    values: dict[str, str | int | bool] = Field(..., description="key → value; write-only")


@router.put(
    "/{slug}/credentials",
    summary="Set the default credential's values (write-only)",
    responses=errors(*ADMIN, *BODY, "invalid_params", "unknown_integration", "integration_error"),
)
@router.put(
    "/{slug}/credentials/{credential_id}",
    summary="Set a credential's values (write-only)",
    responses=errors(*ADMIN, *BODY, "invalid_params", "unknown_integration", "integration_error"),
)
async def put_credentials(
    slug: str,
    body: CredentialValues,
    credential_id: str = DEFAULT_CREDENTIAL_ID,
    runtime: Runtime = Depends(get_runtime),
    _: tokens.Principal = Depends(admin),
) -> dict[str, Any]:
    version = runtime.registry.require_version(slug)
    check_credential_id(credential_id)
    values = catalog.check_values(version, body.values)
    keys = await runtime.credentials.put(
        slug, credential_id, values, empty_is_value=empty_is_value(version.manifest)
    )
    st = await catalog.status(runtime.registry.require(slug), runtime.credentials)
    return {
        "integration": slug,
        "credentialId": credential_id,
        "keys": keys,
        "status": st.status,
        "missingCredentials": st.missing,
    }


@router.delete(
    "/{slug}/credentials",
    summary="Remove the default credential",
    responses=errors(*ADMIN, "unknown_integration", "not_found"),
)
@router.delete(
    "/{slug}/credentials/{credential_id}",
    summary="Remove a credential",
    responses=errors(*ADMIN, "unknown_integration", "not_found"),
)
async def delete_credentials(
    slug: str,
    credential_id: str = DEFAULT_CREDENTIAL_ID,
    runtime: Runtime = Depends(get_runtime),
    _: tokens.Principal = Depends(admin),
) -> dict[str, Any]:
    runtime.registry.require(slug)
    if not await runtime.credentials.delete(slug, credential_id):
        raise ApiError(
            "not_found", f"integration '{slug}' has no credential '{credential_id[:80]}'", status=404
        )
    return {"integration": slug, "credentialId": credential_id, "deleted": True}


class ConnectionTestBody(BaseModel):
    """Optional body of ``POST …/test``: unsaved ``values`` to test before saving them."""

    values: dict[str, str | int | bool] | None = None


@router.post(
    "/{slug}/test",
    summary="Test connection: a step-by-step report",
    responses=errors(
        *ADMIN, *BODY, "invalid_params", "unknown_integration", "integration_error", "rate_limited"
    ),
)
async def connection_test(
    slug: str,
    body: ConnectionTestBody | None = None,
    credentialId: str = DEFAULT_CREDENTIAL_ID,
    runtime: Runtime = Depends(get_runtime),
    who: tokens.Principal = Depends(admin),
) -> dict[str, Any]:
    version = runtime.registry.require_version(slug)
    check_credential_id(credentialId)
    unsaved = catalog.check_values(version, body.values) if body and body.values else None
    return await runtime.execution.connection_test(
        slug, credentialId, unsaved, caller="api", token_id=who.token_id, role=who.role
    )
