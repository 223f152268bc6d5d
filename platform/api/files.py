"""``GET /api/files/{fileId}``: files connectors stored through ``ctx.files`` (DESIGN §3)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse

from bollard.platform import tokens
from bollard.platform.api.deps import get_runtime, known_query, principal
from bollard.platform.api.openapi import AUTH, errors
from bollard.platform.errors import ApiError
from bollard.platform.files.names import content_disposition
from bollard.platform.runtime import Runtime

router = APIRouter(prefix="/api/files", tags=["files"], dependencies=[Depends(known_query)])


@router.get(
    "/{file_id}",
    summary="A file a connector stored (admin, or the token whose call stored it)",
    responses=errors(*AUTH, "unknown_file"),
    response_class=FileResponse,
)
async def get_file(
    file_id: str, runtime: Runtime = Depends(get_runtime), who: tokens.Principal = Depends(principal)
) -> FileResponse:
    """The file's bytes as an attachment: ``Content-Disposition: attachment`` with an
    ASCII ``filename`` and the exact name as ``filename*`` (RFC 6266), the stored media
    type, ``X-Content-Type-Options: nosniff`` and a sandboxing CSP, so no stored file
    runs as a page of this origin. Unknown, expired, or another agent's file: 404
    ``unknown_file``."""
    found = await runtime.files.get(file_id)
    if found is None or (not who.is_admin and found.token_id != who.token_id):
        raise ApiError("unknown_file", f"no file '{file_id[:80]}' (it may have expired)", status=404)
    return FileResponse(
        found.path,
        media_type=found.content_type,
        headers={
            "Content-Disposition": content_disposition(found.file_name),
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "private, no-store",
        },
    )
