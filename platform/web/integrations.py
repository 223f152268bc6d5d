"""The integrations list (live), icons, the event stream, Add integration (upload with a
dry-run preview) and uninstall (DESIGN §10, §13)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from starlette.datastructures import UploadFile
from starlette.responses import RedirectResponse, Response, StreamingResponse

from bollard.platform import catalog
from bollard.platform.api.integrations import ICON_CSP
from bollard.platform.errors import ApiError, BollardError
from bollard.platform.packages import ICON_MEDIA_TYPES
from bollard.platform.upload.archive import MAX_ENTRIES
from bollard.platform.upload.parts import read_file_parts, read_zip_part
from bollard.platform.web.base import WebRoute, forbid_agent, is_htmx, render, runtime_of, session_of

router = APIRouter(route_class=WebRoute, include_in_schema=False)

STREAM_S = 300.0  # an event stream ends after this long; the browser reconnects (EventSource)
KEEPALIVE_S = 15.0
FIRST = asyncio.FIRST_COMPLETED


def counts(row: dict[str, Any]) -> dict[str, int]:
    """``{reads, writes, approval}``: how many operations read, write, need approval."""
    ops = row.get("operations") or []
    return {
        "reads": sum(1 for o in ops if o["operationType"] == "read"),
        "writes": sum(1 for o in ops if o["operationType"] == "write"),
        "approval": sum(1 for o in ops if o["requiresApproval"]),
    }


async def _rows(request: Request) -> list[dict[str, Any]]:
    rt = runtime_of(request)
    return [{**r, "counts": counts(r)} for r in await catalog.catalog(rt.registry, rt.credentials)]


@router.get("/")
async def list_page(request: Request) -> Response:
    session = await session_of(request)
    return render(request, "integrations.html", session=session, rows=await _rows(request))


@router.get("/fragments/integrations")
async def list_fragment(request: Request) -> Response:
    session = await session_of(request)
    return render(request, "parts/integration_rows.html", session=session, rows=await _rows(request))


@router.get("/events")
async def events(request: Request) -> Response:
    """Server-sent events: ``registry`` and ``approval`` (payloads as on the event bus;
    ``resync`` is sent as both). The page's script re-fetches what changed. A stream ends
    after ``STREAM_S`` (the browser reconnects) or when the server begins to shut down."""
    await session_of(request)
    rt = runtime_of(request)

    async def stream() -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        end = loop.time() + STREAM_S
        async with rt.events.subscribe("registry", "approval") as queue:
            yield "retry: 2000\n\n"
            closing = asyncio.ensure_future(rt.closing.wait())
            getting: asyncio.Future[Any] | None = None
            try:
                while loop.time() < end and not rt.closing.is_set():
                    getting = asyncio.ensure_future(queue.get())
                    done, _ = await asyncio.wait({getting, closing}, timeout=KEEPALIVE_S, return_when=FIRST)
                    if getting not in done:
                        getting.cancel()
                        if closing in done or await request.is_disconnected():
                            return
                        yield ": keepalive\n\n"
                        continue
                    event = getting.result()
                    topics = ("registry", "approval") if event.topic == "resync" else (event.topic,)
                    for topic in topics:
                        yield f"event: {topic}\ndata: {json.dumps(event.payload)}\n\n"
            finally:  # also when the client went away mid-wait
                closing.cancel()
                if getting is not None:
                    getting.cancel()

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"X-Accel-Buffering": "no"})


@router.get("/integrations/{slug}/icon")
async def icon(request: Request, slug: str) -> Response:
    await session_of(request)
    version = runtime_of(request).registry.require_version(slug)
    name = version.icon_name
    if name is None:
        raise ApiError("not_found", f"integration '{slug}' has no icon", status=404)
    response = Response(version.files[name], media_type=ICON_MEDIA_TYPES[name.rsplit(".", 1)[1]])
    response.headers["Cache-Control"] = "private, max-age=60"
    response.headers["Content-Security-Policy"] = ICON_CSP  # kept over the page CSP below
    return response


# ------------------------------------------------------------------ add integration


async def _upload(request: Request) -> dict[str, Any]:
    """The form's zip (``file``) or files (``files``), read with the API's caps."""
    form = await request.form(max_files=MAX_ENTRIES + 1)
    zipped = form.get("file")
    many = [f for f in form.getlist("files") if isinstance(f, UploadFile) and f.filename]
    if isinstance(zipped, UploadFile) and zipped.filename:
        if many:
            raise ApiError("invalid_request", "choose either a zip or the files, not both")
        return {"zip_data": await read_zip_part(zipped)}
    if not many:
        raise ApiError("invalid_request", "choose a zip of the package, or its files")
    return {"file_set": await read_file_parts(many)}


@router.get("/add")
async def add_page(request: Request) -> Response:
    session = await session_of(request)
    forbid_agent(session, "installing an integration")
    return render(request, "add.html", session=session, preview=None, error=None)


@router.post("/add")
async def add(request: Request) -> Response:
    """``action=preview``: the dry run (nothing written); ``action=install``: install it."""
    session = await session_of(request)
    forbid_agent(session, "installing an integration")
    form = await request.form(max_files=MAX_ENTRIES + 1)
    action = form.get("action")
    slug = form.get("slug")
    replace = form.get("replace") == "true"
    template = "parts/preview.html" if is_htmx(request) else "add.html"
    try:
        upload = await _upload(request)
        body = await runtime_of(request).installer.install(
            **upload,
            slug=slug.strip() if isinstance(slug, str) and slug.strip() else None,
            replace=replace,
            dry_run=action != "install",
        )
    except BollardError as e:
        details = e.details if isinstance(e.details, list) else None
        error = {"code": e.code, "message": e.message, "details": details}
        return render(request, template, e.status, session, preview=None, error=error)
    if body["installed"]:
        target = f"/integrations/{body['slug']}"
        if is_htmx(request):
            return Response(status_code=200, headers={"HX-Redirect": target})
        return RedirectResponse(target, status_code=303)
    return render(request, template, session=session, preview=body, error=None)


@router.post("/integrations/{slug}/uninstall")
async def uninstall(request: Request, slug: str) -> Response:
    """Uninstall after the person typed the slug again (the confirmation)."""
    session = await session_of(request)
    forbid_agent(session, "uninstalling an integration")
    form = await request.form()
    if form.get("confirm") != slug:
        raise ApiError("invalid_request", f"type the slug '{slug}' to confirm the uninstall")
    await runtime_of(request).installer.uninstall(slug, purge_credentials=form.get("purge") == "true")
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": "/"})
    return RedirectResponse("/", status_code=303)
