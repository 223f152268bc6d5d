"""MCP clients for tests: the official SDK's ``Client`` over streamable HTTP (with a bearer
token) and over stdio (``bollard mcp``), and a client side of the Tasks extension
(``io.modelcontextprotocol/tasks``) built on the SDK's ``ClientExtension`` API."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, Literal

import anyio
import httpx2
from mcp import Client
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult, Request, RequestParams, Result, TextContent
from pydantic import ConfigDict

TASKS = "io.modelcontextprotocol/tasks"
TERMINAL = ("completed", "failed", "cancelled")


@contextlib.asynccontextmanager
async def http_client(base_url: str, token: str | None, **kwargs: Any) -> AsyncIterator[Client]:
    """The SDK client, entered, for ``<base_url>/mcp`` with ``Authorization: Bearer <token>``
    (its HTTP client is the caller's to close: closed here on exit)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(120, read=120))
    async with http, Client(streamable_http_client(f"{base_url}/mcp", http_client=http), **kwargs) as client:
        yield client


def stdio_client(
    integrations: Path, data_dir: Path, token: str, env: dict[str, str] | None = None, **kwargs: Any
) -> Client:
    """The SDK client over ``bollard mcp`` started as a subprocess (token in ``BOLLARD_TOKEN``)."""
    params = StdioServerParameters(
        command=sys.executable,
        args=[
            "-m",
            "bollard.platform.cli",
            "mcp",
            "--integrations",
            str(integrations),
            "--data-dir",
            str(data_dir),
        ],
        env={**(env or {}), "BOLLARD_TOKEN": token, "BOLLARD_SECRET_KEY": "test-secret-key"},
    )
    return Client(params, **kwargs)


class TaskModel(Result):
    """``CreateTaskResult`` (``resultType: "task"``) and the task fields of ``tasks/get``."""

    model_config = ConfigDict(extra="allow")

    task_id: str
    status: str
    status_message: str | None = None
    created_at: str
    last_updated_at: str
    ttl_ms: int | None = None
    poll_interval_ms: int | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class CreateTaskResult(TaskModel):
    result_type: Literal["task"] = "task"


class GetTaskResult(TaskModel):
    result_type: Literal["complete"] = "complete"


class TaskIdParams(RequestParams):
    task_id: str


class GetTask(Request[TaskIdParams, Literal["tasks/get"]]):
    method: Literal["tasks/get"] = "tasks/get"
    params: TaskIdParams
    name_param = "taskId"


class CancelTask(Request[TaskIdParams, Literal["tasks/cancel"]]):
    method: Literal["tasks/cancel"] = "tasks/cancel"
    params: TaskIdParams
    name_param = "taskId"


async def get_task(session: Any, task_id: str) -> GetTaskResult:
    return await session.send_request(GetTask(params=TaskIdParams(task_id=task_id)), GetTaskResult)  # type: ignore[no-any-return]


async def cancel_task(session: Any, task_id: str) -> None:
    await session.send_request(CancelTask(params=TaskIdParams(task_id=task_id)), Result)


class Tasks(ClientExtension):
    """Declares the Tasks extension and resolves a task by polling ``tasks/get`` until it
    ends (``poll_s`` between polls, at most the server's ``pollIntervalMs``)."""

    identifier = TASKS

    def __init__(self, poll_s: float = 0.2) -> None:
        self.poll_s = poll_s

    def claims(self) -> Sequence[ResultClaim[Any]]:
        return (ResultClaim(result_type="task", model=CreateTaskResult, resolve=self.resolve),)

    async def resolve(self, created: CreateTaskResult, ctx: ClaimContext) -> CallToolResult:
        task: TaskModel = created
        while task.status not in TERMINAL:
            await anyio.sleep(min(self.poll_s, (task.poll_interval_ms or 1000) / 1000))
            task = await get_task(ctx.session, created.task_id)
        if task.status == "completed" and task.result is not None:
            return CallToolResult.model_validate(task.result)
        return CallToolResult(content=[TextContent(type="text", text=f"task {task.status}")], is_error=True)
