"""The Tasks extension (``io.modelcontextprotocol/tasks``, SEP-2663, 2026-07-28) for held writes.

Built on the SDK's ``Extension`` API (``mcp.server.extension``): it serves ``tasks/get``,
``tasks/update`` and ``tasks/cancel`` and wraps ``tools/call``. When a request's client
declares the extension and the call was held for approval, the interceptor answers a
``CreateTaskResult`` (``resultType: "task"``) instead of the pending envelope. The task
is the approval: its ``taskId`` is the approval id, so it is as durable as the approval row
(a restart or another replica sharing the database answers ``tasks/get`` the same), and a
caller sees only the tasks of its own token (agents; admins see all, as with approvals).

``tasks/get`` maps the approval's status: ``pending`` → ``working`` (the status message
names the approval page), ``approved``/``executing`` → ``working``, ``succeeded`` /
``failed`` → ``completed`` with the tool result (``isError`` when the run failed: a tool
error, not a JSON-RPC one), ``rejected`` by a person or ``expired`` → ``completed`` with an
``isError`` result saying why, withdrawn by ``tasks/cancel`` → ``cancelled``.
``tasks/cancel`` withdraws a pending approval (it is rejected, its reason saying it was
withdrawn by the requester); once decided it has no effect (cancellation is cooperative,
spec "Task Cancellation"). ``tasks/update`` has nothing to take: no task asks for input.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mcp.server.extension import Extension, MethodBinding
from mcp.shared.exceptions import MCPError
from mcp_types import (
    INVALID_PARAMS,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    CallToolRequestParams,
    CallToolResult,
    RequestParams,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import Field

from bollard.platform.errors import BollardError

if TYPE_CHECKING:
    from mcp.server.context import CallNext, HandlerResult, ServerRequestContext

    from bollard.platform.mcp.host import McpHost

TASKS = "io.modelcontextprotocol/tasks"
POLL_INTERVAL_MS = 2000
WITHDRAWN = "withdrawn by the requester (tasks/cancel)"


def declares_tasks(ctx: ServerRequestContext[Any, Any]) -> bool:
    """This 2026-07-28 request's client declared the Tasks extension (per request)."""
    if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        return False
    caps = ctx.session.client_capabilities
    return bool(caps is not None and caps.extensions and TASKS in caps.extensions)


def _require(ctx: ServerRequestContext[Any, Any]) -> None:
    if not declares_tasks(ctx):
        raise MCPError(
            MISSING_REQUIRED_CLIENT_CAPABILITY,
            f"Missing required client capability: declare the {TASKS} extension",
            data={"requiredCapabilities": {"extensions": {TASKS: {}}}},
        )


class TaskParams(RequestParams):
    """``tasks/get`` and ``tasks/cancel`` params: ``{"taskId"}``."""

    task_id: str = Field(alias="taskId", max_length=200)


class TaskUpdateParams(TaskParams):
    """``tasks/update`` params: ``{"taskId", "inputResponses"}``."""

    input_responses: dict[str, Any] = Field(default_factory=dict, alias="inputResponses")


def _last_update(approval: dict[str, Any]) -> str:
    # every stamp is iso_utc's one format, so the latest is the greatest string
    return max(
        str(approval[k]) for k in ("finishedAt", "startedAt", "decidedAt", "requestedAt") if approval.get(k)
    )


class ApprovalTasks(Extension):
    """Held writes as tasks (module docstring)."""

    identifier = TASKS

    def __init__(self, host: McpHost) -> None:
        self.host = host

    def methods(self) -> Sequence[MethodBinding]:
        modern = frozenset(MODERN_PROTOCOL_VERSIONS)
        return (
            MethodBinding("tasks/get", TaskParams, self.get, modern),
            MethodBinding("tasks/update", TaskUpdateParams, self.update, modern),
            MethodBinding("tasks/cancel", TaskParams, self.cancel, modern),
        )

    def task(self, ctx: ServerRequestContext[Any, Any], approval: dict[str, Any]) -> dict[str, Any]:
        """The ``DetailedTask`` of one approval (wire JSON, camelCase)."""
        from bollard.platform.mcp.approvals import decided_result

        rt = self.host.runtime
        status, aid = approval["status"], approval["id"]
        task: dict[str, Any] = {
            "taskId": aid,
            "createdAt": approval["requestedAt"],
            "lastUpdatedAt": _last_update(approval),
            "ttlMs": rt.settings.approval_ttl_s * 1000,
            "pollIntervalMs": POLL_INTERVAL_MS,
        }
        if status == "pending":
            page = self.host.approval_page(ctx, aid)
            task.update(status="working", statusMessage=f"waiting for a person's approval: {page}")
        elif status in ("approved", "executing"):
            task.update(status="working", statusMessage="approved by a person; running")
        elif status == "rejected" and approval.get("reason") == WITHDRAWN:
            task.update(status="cancelled", statusMessage=WITHDRAWN)
        else:
            result = decided_result(approval, rt.settings.max_model_result_chars)
            task.update(
                status="completed",
                statusMessage=f"approval {status}",
                result=result.model_dump(by_alias=True, mode="json", exclude_none=True),
            )
        return task

    async def _approval(self, ctx: ServerRequestContext[Any, Any], task_id: str) -> dict[str, Any]:
        _require(ctx)
        try:
            return await self.host.runtime.approvals.get(task_id, self.host.principal(ctx))
        except BollardError:
            raise MCPError(INVALID_PARAMS, f"Failed to retrieve task: no task '{task_id[:80]}'") from None

    async def get(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> dict[str, Any]:
        """``tasks/get``: the task's current state (``resultType: "complete"``)."""
        return {**self.task(ctx, await self._approval(ctx, params.task_id)), "resultType": "complete"}

    async def update(self, ctx: ServerRequestContext[Any, Any], params: TaskUpdateParams) -> dict[str, Any]:
        """``tasks/update``: acknowledged; no approval task asks for input, so responses are ignored."""
        await self._approval(ctx, params.task_id)
        return {"resultType": "complete"}

    async def cancel(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> dict[str, Any]:
        """``tasks/cancel``: withdraw the approval while it is pending (module docstring)."""
        approval = await self._approval(ctx, params.task_id)
        if approval["status"] == "pending":
            # decided or expired meanwhile: the task ends as that
            with contextlib.suppress(BollardError):
                await self.host.runtime.approvals.reject(approval["id"], self.host.principal(ctx), WITHDRAWN)
        return {"resultType": "complete"}

    async def intercept_tool_call(
        self, params: CallToolRequestParams, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        """A held write of a declaring client becomes a task; anything else passes through."""
        result = await call_next(ctx)
        if not declares_tasks(ctx) or not isinstance(result, CallToolResult) or result.is_error:
            return result
        body = result.structured_content
        if not isinstance(body, dict) or body.get("status") != "pending" or "approval" not in body:
            return result
        approval = await self.host.runtime.approvals.get(body["approvalId"])
        return {**self.task(ctx, approval), "resultType": "task"}
