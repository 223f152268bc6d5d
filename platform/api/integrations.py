"""Catalog, detail, icon and credentials of integrations (DESIGN §8)."""

from __future__ import annotations

from typing import Any

from bollard.platform import tokens
from bollard.platform.api.deps import admin, get_runtime, principal
from bollard.platform.credential_fields import credential_fields, empty_is_value
from bollard.platform.credentials import DEFAULT_CREDENTIAL_ID, check_credential_id
from bollard.platform.errors import ApiError
from bollard.platform.packages import ICON_MEDIA_TYPES, IntegrationVersion
from bollard.platform.registry import IntegrationEntry
from bollard.platform.runtime import Runtime, required_credential_keys
from fastapi import APIRouter, Depends
from fastapi.responses import Response
from pydantic import BaseModel, Field

router = APIRouter(prefix="/api/integrations", tags=["integrations"])

ICON_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox"


def get_entry(runtime: Runtime, slug: str) -> IntegrationEntry:
    """The registry entry for ``slug``; 404 ``unknown_integration`` otherwise."""
    entry = runtime.registry.get(slug)
    if entry is None:
        raise ApiError("unknown_integration", f"no integration '{slug[:80]}' is installed", status=404)
    return entry


def get_version(runtime: Runtime, slug: str) -> IntegrationVersion:
    """The serving version; 409 ``integration_error`` when the folder never loaded."""
    entry = get_entry(runtime, slug)
    if entry.version is None:
        raise ApiError(
            "integration_error", f"integration '{slug}' failed to load: {entry.status_error}", status=409
        )
    return entry.version


def operation_summary(v: IntegrationVersion) -> list[dict[str, Any]]:
    return [
        {
            "name": op.name,
            "title": op.title or op.name,
            "operationType": op.operation_type,
            "requiresApproval": op.needs_approval,
        }
        for op in v.manifest.all_operations
    ]


async def catalog_item(runtime: Runtime, entry: IntegrationEntry) -> dict[str, Any]:
    status, error, missing = await runtime.status(entry)
    item: dict[str, Any] = {"slug": entry.slug, "status": status}
    if entry.version is not None:
        m = entry.version.manifest
        item.update(
            title=m.title,
            description=m.description,
            version=m.version,
            type=m.type,
            authMethod=m.auth_method,
            contentHash=entry.version.content_hash,
            hasIcon=entry.version.icon_name is not None,
            operations=operation_summary(entry.version),
        )
    else:
        item.update(
            title=entry.slug, description=None, version=None, type=None, authMethod=None, operations=[]
        )
    if error:
        item["error"] = error
    if missing:
        item["missingCredentials"] = missing
    return item


@router.get("", summary="The catalog of installed integrations")
async def list_integrations(
    runtime: Runtime = Depends(get_runtime), _: tokens.Principal = Depends(principal)
) -> dict[str, Any]:
    items = [await catalog_item(runtime, e) for e in runtime.registry.entries()]
    return {"integrations": items, "count": len(items)}


@router.get("/{slug}", summary="One integration: operations, parameter schemas, secrets set")
async def get_integration(
    slug: str, runtime: Runtime = Depends(get_runtime), _: tokens.Principal = Depends(principal)
) -> dict[str, Any]:
    entry = get_entry(runtime, slug)
    item = await catalog_item(runtime, entry)
    if entry.version is None:
        return item
    m = entry.version.manifest
    creds = await runtime.credentials.describe(slug)
    default_keys = next((set(c.keys) for c in creds if c.credential_id == DEFAULT_CREDENTIAL_ID), set())
    required = set(required_credential_keys(entry))
    item.update(
        operations=[
            {
                "name": op.name,
                "title": op.title or op.name,
                "description": op.description,
                "operationType": op.operation_type,
                "requiresApproval": op.needs_approval,
                "requiredScopes": op.required_scopes,
                "parametersSchema": op.params_schema,
                "hasMock": op.has_mock,
                **({"query": op.query} if op.query is not None else {}),
            }
            for op in m.all_operations
        ],
        secretBindings=[
            {"key": k, "set": k in default_keys, "required": k in required} for k in m.secret_bindings
        ],
        credentialKeys=list(m.credential_keys),
        credentialFields=credential_fields(m),
        credentials=[
            {"credentialId": c.credential_id, "keys": c.keys, "updatedAt": c.updated_at.isoformat()}
            for c in creds
        ],
        allowedHosts=m.allowed_hosts,
        setupGuide=m.setup_guide,
        supportedAuthMethods=m.supported_auth_methods or [m.auth_method],
        warnings=[str(w) for w in entry.version.warnings],
    )
    if m.sql_connection_config is not None:
        item["sqlConnectionConfig"] = {
            "engine": m.sql_connection_config.engine,
            "readOnly": m.sql_connection_config.read_only,
        }
    return item


@router.get("/{slug}/icon", summary="The integration's icon", response_class=Response)
async def get_icon(
    slug: str, runtime: Runtime = Depends(get_runtime), _: tokens.Principal = Depends(principal)
) -> Response:
    version = get_version(runtime, slug)
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


def check_values(version: IntegrationVersion, values: dict[str, Any]) -> dict[str, str]:
    """Only keys the manifest declares (DESIGN §7); values become strings."""
    allowed = version.manifest.credential_keys
    unknown = [k for k in values if k not in allowed]
    if unknown:
        raise ApiError(
            "invalid_params",
            f"values.{unknown[0]}: not a credential key of this integration; allowed keys: "
            + (", ".join(allowed) or "(none: authMethod is 'none')"),
            details=[{"path": f"values.{k}", "message": "unknown credential key"} for k in unknown],
            status=400,
        )
    out = {}
    for k, v in values.items():
        s = ("true" if v else "false") if isinstance(v, bool) else str(v)
        if len(s) > 64 * 1024:
            raise ApiError("invalid_params", f"values.{k}: longer than 65536 characters", status=400)
        out[k] = s
    return out


@router.put("/{slug}/credentials", summary="Set the default credential's values (write-only)")
@router.put("/{slug}/credentials/{credential_id}", summary="Set a credential's values (write-only)")
async def put_credentials(
    slug: str,
    body: CredentialValues,
    credential_id: str = DEFAULT_CREDENTIAL_ID,
    runtime: Runtime = Depends(get_runtime),
    _: tokens.Principal = Depends(admin),
) -> dict[str, Any]:
    version = get_version(runtime, slug)
    check_credential_id(credential_id)
    values = check_values(version, body.values)
    keys = await runtime.credentials.put(
        slug, credential_id, values, empty_is_value=empty_is_value(version.manifest)
    )
    entry = get_entry(runtime, slug)
    status, _err, missing = await runtime.status(entry)
    return {
        "integration": slug,
        "credentialId": credential_id,
        "keys": keys,
        "status": status,
        "missingCredentials": missing,
    }


@router.delete("/{slug}/credentials/{credential_id}", summary="Remove a credential")
async def delete_credentials(
    slug: str,
    credential_id: str,
    runtime: Runtime = Depends(get_runtime),
    _: tokens.Principal = Depends(admin),
) -> dict[str, Any]:
    get_entry(runtime, slug)
    if not await runtime.credentials.delete(slug, credential_id):
        raise ApiError(
            "not_found", f"integration '{slug}' has no credential '{credential_id[:80]}'", status=404
        )
    return {"integration": slug, "credentialId": credential_id, "deleted": True}


class TestBody(BaseModel):
    """Optional body of ``POST …/test``: unsaved ``values`` to test before saving them."""

    values: dict[str, str | int | bool] | None = None


@router.post("/{slug}/test", summary="Test connection: a step-by-step report")
async def test_connection(
    slug: str,
    body: TestBody | None = None,
    credentialId: str = DEFAULT_CREDENTIAL_ID,
    runtime: Runtime = Depends(get_runtime),
    _: tokens.Principal = Depends(admin),
) -> dict[str, Any]:
    from bollard.platform.connection_test import run_connection_test

    version = get_version(runtime, slug)
    check_credential_id(credentialId)
    unsaved = check_values(version, body.values) if body and body.values else None
    return await run_connection_test(runtime, slug, credentialId, unsaved)
