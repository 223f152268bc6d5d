"""Approvals an agent can wait on over MCP (DESIGN §6, §9).

The approval is the server-side row of ``platform/approvals.py``; nothing an MCP client
sends decides it. A write's tool call answers in one of three ways:

1. always possible, and the only way for a client that declares neither of the below:
   a normal tool result whose ``structuredContent`` is the pending approval
   (:func:`pending_envelope`: its id, what will run, when it expires, how to check);
2. the client declares URL-mode elicitation (``capabilities.elicitation.url``) on a
   2026-07-28 request: ``input_required`` with one URL elicitation pointing at the
   approval's page, ``<base>/approvals/<id>``, and a ``requestState`` naming the
   approval. The client shows the page to its user and retries; the retry waits up to
   ``BOLLARD_MCP_APPROVAL_WAIT_S`` for the decision (:func:`resume`), answers the outcome
   once decided, else a state-only ``input_required`` so the client retries again — at
   most :data:`MAX_ROUNDS` times, then the pending envelope. The elicitation's
   ``accept`` only means the user opened the page; ``decline``/``cancel`` end the wait
   with the pending envelope, leaving the approval to a person;
3. the client declares the Tasks extension: a task (``tasks.py``).

The SDK seals ``requestState`` (AES-GCM, bound to the tool, its arguments and the token;
``server.py``), so a retry cannot name another approval; :func:`resume` reads the approval
as the caller (agents see only their own) all the same.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mcp_types import (
    CallToolRequestParams,
    CallToolResult,
    ElicitRequest,
    ElicitRequestURLParams,
    ElicitResult,
    InputRequiredResult,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

from bollard.platform.approvals.rows import FINAL_STATUSES, pending_body
from bollard.platform.errors import BollardError
from bollard.platform.mcp.results import error_result, tool_result

if TYPE_CHECKING:
    from mcp.server.context import ServerRequestContext

    from bollard.platform.mcp.host import McpHost
    from bollard.platform.tokens import Principal

ELICITATION_KEY = "approval"  # the one input request's key
MAX_ROUNDS = 8  # waits per call; the SDK client gives up after 10 input_required rounds
WAIT_CHECK = "?wait=30"


def approval_uri(approval_id: str) -> str:
    """The MCP resource of one approval (``resources.py``)."""
    return f"bollard://approvals/{approval_id}"


def pending_envelope(
    host: McpHost, ctx: ServerRequestContext[Any, Any], body: dict[str, Any]
) -> dict[str, Any]:
    """The execution service's 202 body (``approvals.pending_body``) with what an agent
    needs to wait: ``expiresAt``, ``willRun`` (the summary the approver sees), ``howToCheck``
    (the resource, the long-poll URL, the page) and a message saying not to call again."""
    approval = body["approval"]
    aid = approval["id"]
    page = host.approval_page(ctx, aid)
    return {
        **body,
        "expiresAt": approval["expiresAt"],
        "willRun": approval["summary"],
        "howToCheck": {
            "resource": approval_uri(aid),
            "api": host.api_url(ctx, f"/api/approvals/{aid}{WAIT_CHECK}"),
            "page": page,
        },
        "message": f"Not run yet: '{approval['operation']}' of '{approval['integration']}' waits for a "
        f"person's approval ({page}). Do not call the tool again; read the resource "
        f"{approval_uri(aid)} (or GET {WAIT_CHECK[1:]} on the api URL) for the outcome. "
        f"It expires at {approval['expiresAt']}.",
    }


def pending_result(
    host: McpHost, ctx: ServerRequestContext[Any, Any], body: dict[str, Any]
) -> CallToolResult:
    """The pending envelope as a (successful) tool result."""
    envelope = pending_envelope(host, ctx, body)
    return tool_result(envelope, is_error=False, max_chars=host.runtime.settings.max_model_result_chars)


def wants_url_elicitation(ctx: ServerRequestContext[Any, Any]) -> bool:
    """The request is on the 2026-07-28 wire and its client declared URL-mode elicitation."""
    if ctx.protocol_version not in MODERN_PROTOCOL_VERSIONS:
        return False
    caps = ctx.session.client_capabilities
    return bool(caps is not None and caps.elicitation is not None and caps.elicitation.url is not None)


def _state(approval_id: str, round_: int) -> str:
    return json.dumps({"approvalId": approval_id, "round": round_})


def elicit(host: McpHost, ctx: ServerRequestContext[Any, Any], body: dict[str, Any]) -> InputRequiredResult:
    """``input_required`` with a URL elicitation to the approval's page (round 1)."""
    approval = body["approval"]
    aid = approval["id"]
    message = (
        f"'{approval['operation']}' of '{approval['integration']}' needs a person's approval before it "
        f"runs. Open the page to see what will run and approve or reject it. It expires at "
        f"{approval['expiresAt']}."
    )
    request = ElicitRequest(params=ElicitRequestURLParams(message=message, url=host.approval_page(ctx, aid)))
    return InputRequiredResult(input_requests={ELICITATION_KEY: request}, request_state=_state(aid, 1))


def decided_result(approval: dict[str, Any], max_chars: int) -> CallToolResult:
    """A decided approval as the tool's result: the run's envelope when it succeeded
    (with ``approvalId``), else ``isError`` with why (failed, rejected with the reason,
    expired)."""
    aid, status = approval["id"], approval["status"]
    if status == "succeeded" and isinstance(approval.get("result"), dict):
        return tool_result({**approval["result"], "approvalId": aid}, is_error=False, max_chars=max_chars)
    if status == "rejected":
        why = f": {approval['reason']}" if approval.get("reason") else ""
        error = {"code": "approval_rejected", "message": f"a person rejected this call{why}; it did not run"}
    else:
        error = approval.get("error") or {
            "code": f"approval_{status}",
            "message": f"the approval is {status}",
        }
    extra = {"status": status, "approvalId": aid, "integration": approval["integration"]}
    return error_result(
        error["code"], error["message"], max_chars=max_chars, operation=approval["operation"], **extra
    )


def parse_state(state: str) -> tuple[str, int] | None:
    """``(approvalId, round)`` of a ``requestState`` this module minted (the SDK already
    verified it), else ``None``."""
    try:
        data = json.loads(state)
        aid, round_ = data["approvalId"], data["round"]
    except (ValueError, KeyError, TypeError):
        return None
    return (aid, round_) if isinstance(aid, str) and type(round_) is int else None


def _declined(params: CallToolRequestParams) -> bool:
    response = (params.input_responses or {}).get(ELICITATION_KEY)
    return isinstance(response, ElicitResult) and response.action != "accept"


async def resume(
    host: McpHost,
    ctx: ServerRequestContext[Any, Any],
    params: CallToolRequestParams,
    principal: Principal,
    approval_id: str,
    round_: int,
) -> CallToolResult | InputRequiredResult:
    """A retry of a held write: wait for the decision, answer the outcome, or ask the
    client to retry (module docstring). Never runs or re-requests anything."""
    rt = host.runtime
    cap = rt.settings.max_model_result_chars
    try:
        current = await rt.approvals.get(approval_id, principal)
    except BollardError as e:
        return error_result(e.code, e.message, max_chars=cap)
    if current["status"] == "pending" and (_declined(params) or round_ >= MAX_ROUNDS):
        return pending_result(host, ctx, pending_body(current))
    approval = await rt.approvals.wait(approval_id, principal, rt.settings.mcp_approval_wait_s)
    if approval["status"] in FINAL_STATUSES:
        return decided_result(approval, cap)
    if round_ < MAX_ROUNDS:
        return InputRequiredResult(request_state=_state(approval_id, round_ + 1))
    if approval["status"] == "pending":
        return pending_result(host, ctx, pending_body(approval))
    uri = approval_uri(approval_id)  # approved and still running: the outcome is the resource's
    body = {"status": approval["status"], "approvalId": approval_id, "approval": approval,
            "message": f"approved by a person and still running; read {uri} for the outcome"}  # fmt: skip
    return tool_result(body, is_error=False, max_chars=cap)
