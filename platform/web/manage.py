"""Manage one integration: setup guide, credentials with Test connection, OAuth2
connect, operations with run forms (DESIGN §7, §8, §13). Every action goes through the
services the API uses: the catalog, the credential store, the execution service."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from bollard.platform import catalog
from bollard.platform.credential_fields import credential_fields, empty_is_value
from bollard.platform.credentials import DEFAULT_CREDENTIAL_ID, check_credential_id
from bollard.platform.errors import ApiError
from bollard.platform.invocation import Invocation
from bollard.platform.web.base import WebRoute, forbid_agent, is_htmx, render, runtime_of, session_of
from bollard.platform.web.forms import form_fields, params_from_form
from bollard.platform.web.session import Session

router = APIRouter(route_class=WebRoute, include_in_schema=False)


def oauth_state(item: dict[str, Any], credential_id: str) -> str | None:
    """For an oauth2 integration: ``connected``, ``reauthorize`` (the provider revoked the
    grant) or ``not_connected``; ``None`` for other auth methods."""
    if item.get("authMethod") != "oauth2":
        return None
    keys: list[str] = next(
        (c["keys"] for c in item.get("credentials", []) if c["credentialId"] == credential_id), []
    )
    if "accessToken" in keys:
        return "connected"
    return "reauthorize" if "reauthorize" in keys else "not_connected"


async def _detail(request: Request, slug: str, credential_id: str) -> dict[str, Any]:
    rt = runtime_of(request)
    item = await catalog.detail(rt.registry, rt.credentials, slug)
    set_keys: list[str] = next(
        (c["keys"] for c in item.get("credentials", []) if c["credentialId"] == credential_id), []
    )
    for op in item.get("operations", []):
        op["fields"] = form_fields(op.get("parametersSchema") or {})
    return {
        "item": item,
        "credential_id": credential_id,
        "set_keys": set_keys,
        "oauth": oauth_state(item, credential_id),
    }


def _credential_id(value: Any) -> str:
    cid = value.strip() if isinstance(value, str) and value.strip() else DEFAULT_CREDENTIAL_ID
    check_credential_id(cid)
    return cid


@router.get("/integrations/{slug}")
async def manage_page(request: Request, slug: str, credential: str | None = None) -> Response:
    session = await session_of(request)
    ctx = await _detail(request, slug, _credential_id(credential))
    return render(request, "manage.html", session=session, **ctx)


def _typed_values(form: Any, fields: list[dict[str, Any]]) -> dict[str, str]:
    """The credential fields the person typed into (an empty field keeps what is stored)."""
    out = {}
    for f in fields:
        value = form.get("c." + f["key"])
        if isinstance(value, str) and value != "":
            out[f["key"]] = value
    return out


async def _credentials_result(
    request: Request, session: Session, slug: str, cid: str, **result: Any
) -> Response:
    ctx = await _detail(request, slug, cid)
    template = "parts/credentials.html" if is_htmx(request) else "manage.html"
    return render(request, template, session=session, **ctx, **result)


@router.post("/integrations/{slug}/credentials")
async def credentials(request: Request, slug: str) -> Response:
    """``action=test``: Test connection on the form's unsaved values (laid over the
    stored ones); ``action=save``: store them; ``action=delete``: remove the credential."""
    session = await session_of(request)
    forbid_agent(session, "changing or testing credentials")
    rt = runtime_of(request)
    form = await request.form()
    cid = _credential_id(form.get("credential_id"))
    version = rt.registry.require_version(slug)
    typed = _typed_values(form, credential_fields(version.manifest))
    action = form.get("action")
    if action == "test":
        unsaved = catalog.check_values(version, typed) if typed else None
        report = await rt.execution.connection_test(
            slug, cid, unsaved, caller="ui", token_id=session.principal.token_id, role=session.principal.role
        )
        return await _credentials_result(request, session, slug, cid, report=report)
    if action == "delete":
        if not await rt.credentials.delete(slug, cid):
            raise ApiError("not_found", f"integration '{slug}' has no credential '{cid}'", status=404)
        return await _credentials_result(
            request, session, slug, DEFAULT_CREDENTIAL_ID, saved=f"removed '{cid}'"
        )
    if not typed:
        raise ApiError(
            "invalid_request", "type at least one value to save (empty fields keep what is stored)"
        )
    values = catalog.check_values(version, typed)
    keys = await rt.credentials.put(slug, cid, values, empty_is_value=empty_is_value(version.manifest))
    return await _credentials_result(request, session, slug, cid, saved=f"saved: {', '.join(sorted(keys))}")


@router.post("/integrations/{slug}/oauth2/connect")
async def oauth2_connect(request: Request, slug: str) -> Response:
    """Start the OAuth2 authorisation (PKCE, signed state) and send the browser to the
    provider; it comes back to the API's callback."""
    session = await session_of(request)
    forbid_agent(session, "connecting an OAuth2 account")
    cid = _credential_id((await request.form()).get("credential_id"))
    started = await runtime_of(request).oauth2.start_authorization(slug, cid)
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": started.url})
    return RedirectResponse(started.url, status_code=303)


@router.post("/integrations/{slug}/operations/{operation}")
async def run_operation(request: Request, slug: str, operation: str) -> Response:
    """Run an operation from its form through the execution service: the result envelope,
    or the pending approval (writes), or the error envelope."""
    session = await session_of(request)
    rt = runtime_of(request)
    version = rt.registry.require_version(slug)
    op = version.manifest.operation(operation)
    if op is None:
        raise ApiError(
            "unknown_operation", f"integration '{slug}' has no operation '{operation[:80]}'", status=404
        )
    form = await request.form()
    params = params_from_form(form, op.params_schema)
    outcome = await rt.execution.invoke(
        Invocation(
            slug=slug,
            operation=operation,
            params=params,
            credential_id=_credential_id(form.get("credential_id")),
            use_mock=form.get("mock") == "true",
            caller="ui",
            token_id=session.principal.token_id,
            role=session.principal.role,
        )
    )
    body = outcome.body
    template = "parts/run_result.html" if is_htmx(request) else "run_result.html"
    return render(request, template, outcome.status, session, body=body, slug=slug, operation=operation)
