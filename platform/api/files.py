"""``GET /api/files/{fileId}``: files connectors stored through ``ctx.files`` (DESIGN §3)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse

from bollard.platform import tokens
from bollard.platform.api.deps import get_runtime, known_query, principal
from bollard.platform.api.openapi import AUTH, errors
from bollard.platform.errors import ApiError, ApprovalError
from bollard.platform.files.names import content_disposition
from bollard.platform.files.store import StoredFile
from bollard.platform.runtime import Runtime

router = APIRouter(prefix="/api/files", tags=["files"], dependencies=[Depends(known_query)])


@router.get(
    "/{file_id}",
    summary="A file a connector stored (admin, the token whose call stored it, or the approval's requester)",
    responses=errors(*AUTH, "unknown_file"),
    response_class=FileResponse,
)
async def get_file(
    file_id: str, runtime: Runtime = Depends(get_runtime), who: tokens.Principal = Depends(principal)
) -> FileResponse:
    """The file's bytes as an attachment: ``Content-Disposition: attachment`` with an
    ASCII ``filename`` and the exact name as ``filename*`` (RFC 6266), the stored media
    type, ``X-Content-Type-Options: nosniff`` and a sandboxing CSP, so no stored file
    runs as a page of this origin. Readable by admins, the token whose call stored it and,
    for a file an approved write stored, the agent that requested the write. Unknown,
    expired, or another agent's file: 404 ``unknown_file``."""
    found = await runtime.files.get(file_id)
    if found is None or not await _may_read(runtime, who, found):
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


async def _may_read(runtime: Runtime, who: tokens.Principal, found: StoredFile) -> bool:
    if who.is_admin or (found.token_id is not None and found.token_id == who.token_id):
        return True
    if found.approval_id is None:
        return False
    try:  # the approval's own visibility rule: agents see the approvals they requested
        await runtime.approvals.get(found.approval_id, who)
    except ApprovalError:
        return False
    return True
