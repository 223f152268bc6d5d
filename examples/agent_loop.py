"""A model calls Bollard's operations as tools: a tool-calling loop over any OpenAI-compatible
chat completions API, with the writes waiting for a person's approval.

Run the server first (``make run``), then, from the repository root:

    export OPENAI_BASE_URL=https://api.openai.com/v1 OPENAI_API_KEY=sk-… MODEL=gpt-4o-mini
    .venv/bin/python examples/agent_loop.py "Cancel the first confirmed reservation of the hotel"

What it does: takes the tools from ``GET /api/tools?format=openai`` (one per operation the
token may call), sends the task and the tools to ``$OPENAI_BASE_URL/chat/completions``
(``Authorization: Bearer $OPENAI_API_KEY``, model ``$MODEL``), runs every tool call the
model asks for through Bollard (``bollard.platform.client``), feeds each result back sized
for the model (at most ``--max-result-chars``, valid JSON), and repeats until the model
answers without tool calls (at most ``--max-turns`` times). A write is held for a person:
the script prints the approval (``bollard approvals approve ID``, the web page or the API
decides it), waits up to ``--wait`` seconds and hands the model the outcome (or why it did
not run). Progress goes to stderr, the model's final answer to stdout. The token defaults
to ``.bollard/admin.token`` (``--token``; an agent token is the usual choice). Exit status
0 with an answer, 1 on an error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bollard.platform.client import BollardClientError, Client, outcome
from bollard.platform.tools import tool_name

SYSTEM = (
    "You operate business systems through tools. Each tool is one named operation. Reads answer at once. "
    "A write waits for a person's approval; you will get its outcome, do not call it twice."
)


def log(*parts: Any) -> None:
    print(*parts, file=sys.stderr, flush=True)


def operations_by_tool(bollard: Client, tools: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """Tool name → (integration slug, operation), for the tools the model was given."""
    offered = {t["function"]["name"] for t in tools}
    found = {}
    for row in bollard.integrations():
        for op in row.get("operations") or []:
            name = tool_name(row["slug"], op["name"])
            if name in offered:
                found[name] = (row["slug"], op["name"])
    return found


def run_tool(bollard: Client, slug: str, operation: str, arguments: dict[str, Any], wait: float) -> Any:
    """One tool call through Bollard; a held write waits for the person's decision."""
    try:
        result = bollard.call(slug, operation, arguments)
        if result.get("status") != "pending":
            return result
        aid = result["approvalId"]
        log(f"  approval {aid} is pending: a person approves it (bollard approvals approve {aid})")
        deadline = time.monotonic() + wait
        approval = bollard.approval(aid)
        while approval["status"] in ("pending", "approved", "executing"):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            approval = bollard.approval(aid, wait=min(60.0, left))  # a long poll
        log(f"  approval {aid} is {approval['status']}")
        return outcome(approval)
    except BollardClientError as e:  # the model reads the error and may correct its call
        return {"success": False, "error": {"code": e.code, "message": e.message, "details": e.details}}


def chat(http: httpx.Client, model: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Any:
    r = http.post("/chat/completions", json={"model": model, "messages": messages, "tools": tools})
    r.raise_for_status()
    return r.json()["choices"][0]["message"]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("task", help="what the model should do")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token", default=None)
    parser.add_argument("--max-turns", type=int, default=8)
    parser.add_argument("--max-result-chars", type=int, default=8000)
    parser.add_argument("--wait", type=float, default=600.0, help="seconds to wait for each approval")
    args = parser.parse_args()
    token = args.token or Path(".bollard/admin.token").read_text().strip()
    base = os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1").rstrip("/")
    model = os.environ.get("MODEL", "gpt-4o-mini")
    headers = {"Authorization": f"Bearer {os.environ.get('OPENAI_API_KEY', '')}"}
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": args.task},
    ]
    with (
        Client(args.url, token) as bollard,
        httpx.Client(base_url=base, headers=headers, timeout=300) as http,
    ):
        try:
            tools = bollard.tools("openai")
        except BollardClientError as e:
            print(json.dumps({"error": {"code": e.code, "message": e.message}}))
            return 1
        targets = operations_by_tool(bollard, tools)
        log(f"{len(tools)} tools offered to {model}")
        for _ in range(args.max_turns):
            reply = chat(http, model, messages, tools)
            messages.append(reply)
            calls = reply.get("tool_calls") or []
            if not calls:
                print(reply.get("content") or "")
                return 0
            for call in calls:
                name = call["function"]["name"]
                try:
                    arguments = json.loads(call["function"].get("arguments") or "{}")
                except ValueError:
                    arguments = None
                log(f"→ {name} {json.dumps(arguments)}")
                if name not in targets or not isinstance(arguments, dict):
                    result: Any = {
                        "success": False,
                        "error": {
                            "code": "invalid_request",
                            "message": f"no tool '{name}' or its arguments are not a JSON object",
                        },
                    }
                else:
                    result = run_tool(bollard, *targets[name], arguments, args.wait)
                content = json.dumps(bollard.for_model(result, args.max_result_chars), ensure_ascii=False)
                messages.append({"role": "tool", "tool_call_id": call["id"], "content": content})
        log(f"no answer after {args.max_turns} turns")
        return 1


if __name__ == "__main__":
    sys.exit(main())
