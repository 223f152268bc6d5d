"""What every surface shows about installed integrations (DESIGN §8, §13).

The HTTP API (``GET /api/integrations``, ``GET /api/integrations/{slug}``), ``bollard
list``, the web page, the agent tools and MCP all read from here, so they never
disagree: :func:`catalog` (one row per folder), :func:`detail` (operations with their
parameter schemas, secret bindings and whether each is set, the setup guide, lint
warnings), :func:`status` (``ready`` | ``needs_credentials`` | ``error``) and
:func:`check_values` (the credential values a caller may store).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from bollard.platform.credential_fields import credential_fields, required_keys
from bollard.platform.credentials import DEFAULT_CREDENTIAL_ID, CredentialInfo
from bollard.platform.errors import CredentialError
from bollard.platform.packages import IntegrationVersion
from bollard.platform.registry import IntegrationEntry, Registry
from bollard.platform.timestamps import iso_utc

MAX_VALUE_CHARS = 64 * 1024  # one credential value (characters)


class CredentialView(Protocol):
    """What the catalog reads of the credentials: which ids and keys are set (never
    values). ``CredentialStore`` is one; ``bollard list`` passes a read-only one."""

    async def describe(self, integration: str) -> list[CredentialInfo]: ...

    async def get(self, integration: str, credential_id: str) -> dict[str, str] | None:
        """The decrypted values; raises ``CredentialError`` ``credentials_unreadable``."""
        ...


@dataclass(frozen=True)
class Status:
    """An integration's catalog status: ``ready``, ``needs_credentials`` or ``error``
    (``error`` says why; ``missing`` lists the unset required credential keys)."""

    status: str  # ready | needs_credentials | credentials_unreadable | error
    error: str | None = None
    missing: list[str] = field(default_factory=list)


async def status(entry: IntegrationEntry, creds: CredentialView) -> Status:
    """The status of ``entry``: ``error`` while its folder on disk does not load (the last
    good version may still serve); ``credentials_unreadable`` when its default credential
    is stored but no configured key decrypts it (after a key change; the error says what
    to do); else whether the default credential sets every required key."""
    if entry.errors:
        return Status("error", entry.status_error)
    if entry.version is None:
        return Status("error", "the folder has not loaded")
    infos = {c.credential_id: c for c in await creds.describe(entry.slug)}
    if DEFAULT_CREDENTIAL_ID in infos:
        try:
            await creds.get(entry.slug, DEFAULT_CREDENTIAL_ID)
        except CredentialError as e:
            return Status("credentials_unreadable", e.message)
    required = required_keys(entry.version.manifest)
    if not required:
        return Status("ready")
    have = set(infos[DEFAULT_CREDENTIAL_ID].keys) if DEFAULT_CREDENTIAL_ID in infos else set()
    missing = [k for k in required if k not in have]
    return Status("needs_credentials", None, missing) if missing else Status("ready")


def operation_summary(version: IntegrationVersion) -> list[dict[str, Any]]:
    """``[{name, title, operationType, requiresApproval}]`` in manifest order."""
    return [
        {
            "name": op.name,
            "title": op.title or op.name,
            "operationType": op.operation_type,
            "requiresApproval": op.needs_approval,
        }
        for op in version.manifest.all_operations
    ]


def serving(version: IntegrationVersion) -> dict[str, Any]:
    """Which version serves: ``{version, contentHash, loadedAt}`` (ISO 8601 UTC)."""
    return {
        "version": version.version,
        "contentHash": version.content_hash,
        "loadedAt": iso_utc(version.loaded_at),
    }


async def catalog_row(entry: IntegrationEntry, creds: CredentialView) -> dict[str, Any]:
    """One catalog row (DESIGN §8): slug, status, title, description, version, type,
    authMethod, contentHash, hasIcon, operations, and ``error``/``missingCredentials``/
    ``serving`` when they apply."""
    st = await status(entry, creds)
    row: dict[str, Any] = {"slug": entry.slug, "status": st.status}
    v = entry.version
    if v is not None:
        m = v.manifest
        row.update(
            title=m.title,
            description=m.description,
            version=m.version,
            type=m.type,
            authMethod=m.auth_method,
            contentHash=v.content_hash,
            hasIcon=v.icon_name is not None,
            operations=operation_summary(v),
            serving=serving(v),
        )
    else:
        row.update(
            title=entry.slug, description=None, version=None, type=None, authMethod=None, operations=[]
        )
    if st.error:
        row["error"] = st.error
        if v is not None:
            row["error"] += (
                f" (the last good version {v.version}, loaded {iso_utc(v.loaded_at)}, still serves)"
            )
    if st.missing:
        row["missingCredentials"] = st.missing
    return row


async def catalog(registry: Registry, creds: CredentialView) -> list[dict[str, Any]]:
    """Every installed integration's row, sorted by slug (``GET /api/integrations`` and
    ``bollard list``)."""
    return [await catalog_row(e, creds) for e in registry.entries()]


async def detail(registry: Registry, creds: CredentialView, slug: str) -> dict[str, Any]:
    """One integration: its catalog row plus operations with parameter schemas, secret
    bindings and whether each is set, credential fields, allowed hosts, setup guide and
    lint warnings. Raises ``unknown_integration``."""
    entry = registry.require(slug)
    item = await catalog_row(entry, creds)
    if entry.version is None:
        return item
    m = entry.version.manifest
    infos = await creds.describe(slug)
    default_keys = next((set(c.keys) for c in infos if c.credential_id == DEFAULT_CREDENTIAL_ID), set())
    required = set(required_keys(m))
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
            {"credentialId": c.credential_id, "keys": c.keys, "updatedAt": iso_utc(c.updated_at)}
            for c in infos
        ],
        allowedHosts=m.allowed_hosts,
        setupGuide=m.setup_guide,
        supportedAuthMethods=m.supported_auth_methods or [m.auth_method],
        warnings=entry.version.warning_messages,  # the manifest's and the lints, as validate lists them
    )
    if m.sql_connection_config is not None:
        item["sqlConnectionConfig"] = {
            "engine": m.sql_connection_config.engine,
            "readOnly": m.sql_connection_config.read_only,
        }
    return item


def check_values(version: IntegrationVersion, values: dict[str, Any]) -> dict[str, str]:
    """The credential values to store: only keys the manifest declares (DESIGN §7), each
    at most 65 536 characters; booleans become ``"true"``/``"false"``, numbers text.

    Raises :class:`CredentialError` ``invalid_params`` naming ``values.<key>``.
    """
    allowed = version.manifest.credential_keys
    unknown = [k for k in values if k not in allowed]
    if unknown:
        raise CredentialError(
            "invalid_params",
            f"values.{unknown[0]}: not a credential key of integration '{version.slug}'; allowed keys: "
            + (", ".join(allowed) or "(none: authMethod is 'none')"),
            details=[{"path": f"values.{k}", "message": "unknown credential key"} for k in unknown],
        )
    out = {}
    for k, v in values.items():
        text = ("true" if v else "false") if isinstance(v, bool) else str(v)
        if len(text) > MAX_VALUE_CHARS:
            raise CredentialError(
                "invalid_params", f"values.{k}: longer than {MAX_VALUE_CHARS} characters; shorten it"
            )
        out[k] = text
    return out
