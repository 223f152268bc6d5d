"""Health, schema and other routes that are not about one integration."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from fastapi import APIRouter, Depends

from bollard.platform.api.deps import get_runtime
from bollard.platform.api.openapi import errors
from bollard.platform.manifest import json_schema
from bollard.platform.runtime import Runtime

router = APIRouter(tags=["meta"])


@router.get(
    "/healthz",
    summary="Liveness, with the sandbox isolation layers in force",
    responses=errors(common=("internal_error",)),
)
async def healthz(runtime: Runtime = Depends(get_runtime)) -> dict[str, Any]:
    entries = runtime.registry.entries()
    body = {
        "status": "ok",
        "integrations": len(entries),
        "loadErrors": sum(1 for e in entries if e.errors),
        "sandbox": runtime.isolation_layers(),
        # the Deno workers of Tale's connector.ts/.js (DESIGN §3)
        "sandboxJs": runtime.js_isolation_layers(),
        # which event loop serves (uvloop under `bollard serve`; asyncio's own elsewhere)
        "eventLoop": type(asyncio.get_running_loop()).__module__.split(".")[0],
        # which server process answered (`serve --workers N` runs N on one port)
        "pid": os.getpid(),
    }
    aids = runtime.egress_testing_aids()
    if aids is not None:  # operator's testing aids active: say so (DESIGN §4)
        body["egressOverride"] = aids
    return body


@router.get(
    "/api/schema/config.json",
    summary="The manifest JSON Schema",
    responses=errors(common=("internal_error",)),
)
async def manifest_schema() -> dict[str, Any]:
    return json_schema()
