"""The TypeScript/JavaScript runtime (DESIGN §3, §4): Tale's connector shapes run in real
Deno workers of a real pool, ``ctx.http`` goes through the host's handler to a real local
server, and load-time checks report their lines."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bollard.sandbox.errors import ConnectorCompileError, ConnectorError, HttpRequestRefused
from bollard.sandbox.job import RunResult
from bollard.sandbox.js.source import check_source
from bollard.sandbox.limits import Limits
from bollard.sandbox.pool import SandboxPool
from tests.support.deno import require_deno
from tests.support.pool_runs import run_source
from tests.support.standin import Egress, LocalServer

pytestmark = pytest.mark.asyncio(loop_scope="module")

LIMITS = Limits(wall_time_ms=20_000, cpu_time_ms=5_000)


@pytest.fixture(autouse=True)
def _deno() -> None:
    require_deno()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool() -> AsyncIterator[SandboxPool]:
    p = SandboxPool(workers_per_integration=1, idle_timeout_s=3)  # each test is a new key: few idle workers
    yield p
    await p.close()


async def run(pool: SandboxPool, egress: Any, source: str, **overrides: Any) -> RunResult:
    """One run of ``source`` (a key per source) as ``connector.ts`` under :data:`LIMITS`
    unless ``overrides`` say otherwise."""
    defaults = {"key_prefix": "js", "limits": LIMITS, "filename": "connector.ts"}
    return await run_source(pool, egress, source, **{**defaults, **overrides})


TALE_OBJECT = """
interface HttpResponse { status: number; body: unknown; text(): string; json(): unknown }
const API = 'BASE';
const connector = {
  operations: ['echo'],
  testConnection: function (ctx: any) {
    const r = ctx.http.get(API + '/status/204');
    return { status: r.status === 204 ? 'ok' : 'bad' };
  },
  execute: function (ctx: any) {
    const key: string = ctx.secrets.get('apiKey');
    const r: HttpResponse = ctx.http.post(API + '/json', {
      headers: { Authorization: 'Bearer ' + key, 'Content-Type': 'application/json' },
      body: JSON.stringify({ q: ctx.params.q }),
    });
    console.log('status', r.status);
    const echo = r.json() as any;
    return {
      operation: ctx.operation,
      method: echo.method,
      auth: echo.headers.authorization,
      sent: ctx.base64Decode(echo.body_b64),
      bodyIsParsed: (r.body as any).method === 'POST',
    };
  },
};
"""


async def test_tale_connector_object_execute_and_test(
    pool: SandboxPool, egress: Egress, server: LocalServer
) -> None:
    source = TALE_OBJECT.replace("BASE", server.url)
    result = await run(pool, egress, source, operation="echo", params={"q": "hi"}, secrets={"apiKey": "k1"})
    assert result.value == {
        "operation": "echo",
        "method": "POST",
        "auth": "Bearer k1",
        "sent": '{"q":"hi"}',
        "bodyIsParsed": True,
    }
    assert result.logs == ["status 200"]
    assert result.http_requests == 1
    tested = await run(pool, egress, source, entrypoint="test_connection")
    assert tested.value == {"status": "ok"}
    assert pool.js_isolation_layers() is not None
    layers = pool.js_isolation_layers() or {}
    assert layers["runtime"] == "deno" and layers["network_namespace"] is True, layers


async def test_top_level_functions_and_javascript(
    pool: SandboxPool, egress: Egress, server: LocalServer
) -> None:
    source = f"""
function testConnection(ctx) {{ return {{ ok: true }}; }}
function execute(ctx) {{
  const r = ctx.http.get('{server.url}/bytes?n=5', {{ responseType: 'base64' }});
  return {{ b64: r.body, text: ctx.http.get('{server.url}/text').text(), n: ctx.params.n + 1 }};
}}
"""
    result = await run(pool, egress, source, params={"n": 41}, filename="connector.js")
    assert result.value == {"b64": base64.b64encode(bytes(range(5))).decode(), "text": "caf\ufffd", "n": 42}
    assert (await run(pool, egress, source, entrypoint="test_connection", filename="connector.js")).value == {
        "ok": True
    }


async def test_non_2xx_is_returned_and_refusals_are_catchable(
    pool: SandboxPool, egress: Egress, server: LocalServer
) -> None:
    source = f"""
const connector = {{
  execute(ctx: any) {{
    const r = ctx.http.get('{server.url}/status/404');
    let refused = null;
    try {{ ctx.http.get('https://elsewhere.example/x'); }} catch (e: any) {{ refused = [e.code, e.message]; }}
    return {{ status: r.status, refused }};
  }},
}};
"""
    result = await run(pool, egress, source)
    assert result.value["status"] == 404
    assert result.value["refused"][0] == "host_not_allowed"


async def test_an_uncaught_refusal_keeps_its_code(pool: SandboxPool, egress: Egress) -> None:
    source = "const connector = { execute(ctx: any) { return ctx.http.get('https://elsewhere.example/'); } };"
    with pytest.raises(HttpRequestRefused) as info:
        await run(pool, egress, source)
    assert info.value.code == "host_not_allowed"


async def test_thrown_errors_fail_with_message_and_line(pool: SandboxPool, egress: Egress) -> None:
    source = (
        "const x: number = 1;\nconst connector = {\n  execute(ctx: any) {\n"
        "    throw new Error('Unknown operation: ' + ctx.operation);\n  },\n};\n"
    )
    with pytest.raises(ConnectorError) as info:
        await run(pool, egress, source, operation="nope")
    assert info.value.message == "Unknown operation: nope"
    assert info.value.line == 4


async def test_one_execution_is_one_run_of_the_code(pool: SandboxPool, egress: Egress) -> None:
    # Top-level state starts fresh each time (Tale re-runs the code; Bollard runs it once
    # per execution, never sharing it between executions).
    source = (
        "let calls = 0;\nfunction execute(ctx: any) { calls += 1; return { calls, params: ctx.params }; }\n"
    )
    for _ in range(3):
        assert (await run(pool, egress, source, params={"a": [1]})).value == {
            "calls": 1,
            "params": {"a": [1]},
        }


async def test_promise_results_settle(pool: SandboxPool, egress: Egress) -> None:
    source = "async function execute(ctx: any) { const v = await Promise.resolve(2); return { v }; }\n"
    assert (await run(pool, egress, source)).value == {"v": 2}
    never = "function execute(ctx: any) { return new Promise(() => {}); }\n"
    with pytest.raises(ConnectorError, match="never settles"):
        await run(pool, egress, never)


async def test_secrets_are_those_of_the_call(pool: SandboxPool, egress: Egress) -> None:
    source = (
        "function execute(ctx: any) {\n"
        "  return { a: ctx.secrets.get('a') ?? null, b: ctx.secrets.get('b') ?? null };\n}\n"
    )
    assert (await run(pool, egress, source, secrets={"a": "1"})).value == {"a": "1", "b": None}
    assert (await run(pool, egress, source, secrets={"b": "2"})).value == {"a": None, "b": "2"}


async def test_base64_helpers_are_utf8(pool: SandboxPool, egress: Egress) -> None:
    source = (
        "function execute(ctx: any) {\n"
        "  const e = ctx.base64Encode('café:✓');\n  return { e, d: ctx.base64Decode(e) };\n}\n"
    )
    value = (await run(pool, egress, source)).value
    assert value == {"e": base64.b64encode("café:✓".encode()).decode(), "d": "café:✓"}


async def test_missing_entrypoint_at_run_time(pool: SandboxPool, egress: Egress) -> None:
    source = "const connector = { execute(ctx: any) { return 1; } };\n"
    with pytest.raises(ConnectorError, match="testConnection"):
        await run(pool, egress, source, entrypoint="test_connection")


@pytest.mark.parametrize(
    ("source", "line", "match"),
    [
        ("const a = 1;\nconst connector = { execute(ctx) { return ( } };\n", 2, "syntax error"),
        ("import x from 'node:fs';\nfunction execute(ctx) {}\n", 1, "import is not available"),
        ("function execute(ctx) {\n  return import('node:fs');\n}\n", 2, "import is not available"),
        ("function execute(ctx) {\n  return import.meta;\n}\n", 2, "import is not available"),
        ("const fs = require('fs');\nfunction execute(ctx) {}\n", 1, "require() is not available"),
        ("export function execute(ctx) {}\n", 1, "export is not supported"),
        ("const connector = { testConnection(ctx) {} };\n", 0, "no entry point"),
    ],
)
async def test_refused_at_load(pool: SandboxPool, egress: Egress, source: str, line: int, match: str) -> None:
    with pytest.raises(ConnectorCompileError) as info:
        check_source(source, "connector.ts")
    assert match in info.value.errors[0], info.value.errors
    if line:
        assert f"connector.ts line {line}:" in info.value.errors[0]
    with pytest.raises(ConnectorCompileError):
        await run(pool, egress, source)


async def test_deno_parse_errors_report_the_line(pool: SandboxPool, egress: Egress) -> None:
    # Accepted by the host's grammar, refused by Deno's parser in the worker at load.
    source = "function execute(ctx: any) {\n  let a = 1;\n  let a = 2;\n  return a;\n}\n"
    with pytest.raises(ConnectorCompileError) as info:
        await run(pool, egress, source)
    assert "connector.ts line 3" in info.value.errors[0], info.value.errors


async def test_checked_facts_for_the_lints() -> None:
    source = (
        "const BASE = 'https://api.example.com';\n"
        "const connector = {\n  operations: ['a', 'b'],\n"
        "  execute(ctx: any) { return ctx.secrets.get('apiKey') + `https://${BASE}/x`; },\n"
        "  testConnection(ctx: any) { const secrets = ctx.secrets; return secrets.get('other'); },\n};\n"
    )
    checked = check_source(source)
    assert checked.operations == ("a", "b") and checked.operations_line == 3
    assert checked.test_entrypoint == "testConnection"
    assert checked.secret_keys == ((4, "apiKey"), (5, "other"))
    assert checked.urls == ((1, "https://api.example.com"),)


async def test_deno_parse_errors_are_load_errors_of_the_folder(tmp_path: Path) -> None:
    from bollard.platform.errors import PackageError
    from bollard.platform.packages import load_folder
    from tests.support.integrations import rest_manifest, write_integration

    source = "function execute(ctx: any) {\n  let a = 1;\n  let a = 2;\n  return a;\n}\n"
    folder = write_integration(tmp_path, "dup", rest_manifest(), None, {"connector.ts": source})
    with pytest.raises(PackageError) as info:
        await asyncio.to_thread(load_folder, folder)
    assert any("connector.ts line 3" in e for e in info.value.errors), info.value.errors
