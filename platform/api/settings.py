"""Settings: install an integration from an upload, uninstall one (DESIGN §8, §10). Admin only."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, File, Form, UploadFile
from fastapi.responses import JSONResponse

from bollard.platform import tokens
from bollard.platform.api.deps import admin, get_runtime, known_query
from bollard.platform.api.openapi import ADMIN, BODY, errors
from bollard.platform.errors import ApiError
from bollard.platform.runtime import Runtime
from bollard.platform.upload.parts import read_file_parts, read_zip_part

router = APIRouter(prefix="/api/settings", tags=["settings"], dependencies=[Depends(known_query)])

UPLOAD_DESCRIPTION = """\
Multipart form: `file` = a zip of the package (its files at the root or in one top folder),
or one `files` field per file; `slug` (else the top folder's name), `replace=true` to
replace an installed slug (its `config.json` `version` must be higher), `dryRun=true` to
see what would be installed without writing anything. Every rule of DESIGN §10 applies
(≤1 MB in all, `config.json` and the connector ≤512 KB, an icon ≤256 KB checked by its
content, only the file names a package holds, no links, `..`, absolute paths, nested or
encrypted archives, zip bombs); the package is validated like a folder before anything
is written.
"""

PREVIEW = {
    "description": "`dryRun=true`: what would be installed (title, version, operations with "
    "read/write and approval, allowed hosts, credential fields, warnings, files); nothing written",
    "content": {"application/json": {"schema": {"type": "object"}}},
}


async def _read_upload(file: UploadFile | None, files: list[UploadFile] | None) -> dict[str, Any]:
    """The upload's bytes, read with caps: ``{"zip_data"}`` or ``{"file_set"}``."""
    if file is not None and files:
        raise ApiError(
            "invalid_request", "send either a zip in 'file' or the files in 'files' fields, not both"
        )
    if file is not None:
        return {"zip_data": await read_zip_part(file)}
    if not files:
        raise ApiError(
            "invalid_request",
            "send a zip in the 'file' field, or the package's files in 'files' fields (multipart/form-data)",
        )
    return {"file_set": await read_file_parts(files)}


@router.post(
    "/integrations",
    status_code=201,
    summary="Install an integration from a zip or its files (or preview it with dryRun)",
    description=UPLOAD_DESCRIPTION,
    responses={200: PREVIEW, **errors(*ADMIN, *BODY, "invalid_package", "conflict")},
)
async def upload_integration(
    file: UploadFile | None = File(None, description="a zip of the package"),
    files: list[UploadFile] | None = File(None, description="the package's files, one field each"),
    slug: str | None = Form(None, max_length=200, description="the slug; default: the top folder's name"),
    replace: bool = Form(False, description="replace an installed slug (needs a higher version)"),
    dryRun: bool = Form(False, description="validate and answer what would be installed; write nothing"),
    runtime: Runtime = Depends(get_runtime),
    _: tokens.Principal = Depends(admin),
) -> JSONResponse:
    upload = await _read_upload(file, files)
    body = await runtime.installer.install(**upload, slug=slug or None, replace=replace, dry_run=dryRun)
    return JSONResponse(body, status_code=200 if dryRun else 201)


@router.delete(
    "/integrations/{slug}",
    summary="Uninstall an integration (its pending approvals expire; credentials kept unless purged)",
    responses=errors(*ADMIN, "unknown_integration"),
)
async def uninstall_integration(
    slug: str,
    purgeCredentials: bool = False,
    runtime: Runtime = Depends(get_runtime),
    _: tokens.Principal = Depends(admin),
) -> dict[str, Any]:
    return await runtime.installer.uninstall(slug, purge_credentials=purgeCredentials)
