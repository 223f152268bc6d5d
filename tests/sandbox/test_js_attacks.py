"""Attacks on the TypeScript/JavaScript runtime: the JS counterparts of
``test_sandbox_attacks.py``. Each is refused or contained with the right error, and each
is followed by a benign execution of the same connector that must succeed (the host and
the pool are healthy afterwards). Real Deno workers, real limits, a real local server."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from bollard.sandbox.errors import ConnectorError, ExecutionTimeout, LimitExceeded, SandboxError
from bollard.sandbox.job import RunResult
from bollard.sandbox.limits import MIB, Limits
from bollard.sandbox.pool import SandboxPool
from tests.support.deno import require_deno
from tests.support.pool_runs import run_source
from tests.support.standin import Egress, LocalServer

pytestmark = pytest.mark.asyncio(loop_scope="module")

LIMITS = Limits(wall_time_ms=20_000, cpu_time_ms=5_000)
TIGHT = Limits(wall_time_ms=20_000, cpu_time_ms=500, memory_bytes=64 * MIB)


@pytest.fixture(autouse=True)
def _deno() -> None:
    require_deno()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool() -> AsyncIterator[SandboxPool]:
    p = SandboxPool(workers_per_integration=1, idle_timeout_s=3)  # each test is a new key: few idle workers
    yield p
    await p.close()


def connector(attack: str, prelude: str = "") -> str:
    """A TS connector whose ``ping`` operation is benign and any other runs ``attack``."""
    return (
        prelude
        + "\nconst connector = {\n  execute(ctx: any): any {\n"
        + "    if (ctx.operation === 'ping') return { pong: true };\n"
        + attack
        + "\n  },\n};\n"
    )


async def run(pool: SandboxPool, egress: Any, source: str, **overrides: Any) -> RunResult:
    """One run of ``source`` (a key per source) with the ``attack`` operation under
    :data:`LIMITS` unless ``overrides`` say otherwise."""
    defaults = {"key_prefix": "jsattack", "operation": "attack", "limits": LIMITS, "filename": "connector.ts"}
    return await run_source(pool, egress, source, **{**defaults, **overrides})


async def healthy(pool: SandboxPool, egress: Any, source: str) -> None:
    """The same connector still answers (a new worker if the attack killed one)."""
    assert (await run(pool, egress, source, operation="ping")).value == {"pong": True}


ATTEMPTS = """
    const out: Record<string, string> = {};
    const attempt = (name: string, fn: () => unknown) => {
      try { const v = fn(); out[name] = 'succeeded: ' + String(v); }
      catch (e: any) { out[name] = (e && e.name) + ': ' + (e && e.message); }
    };
"""


async def test_prototype_pollution_of_ctx_and_intrinsics(pool: SandboxPool, egress: Egress) -> None:
    source = connector(
        ATTEMPTS
        + """
    if (ctx.operation === 'check') {
      return { polluted: ({} as any).polluted ?? null, arr: ([] as any).polluted ?? null,
               json: JSON.stringify({ a: 1 }), str: ('x' as any).polluted ?? null };
    }
    attempt('object_prototype', () => { (Object.prototype as any).polluted = 1; });
    attempt('proto_of_ctx', () => { (ctx as any).__proto__.polluted = 1; });
    attempt('array_prototype', () => { (Array.prototype as any).polluted = 1; });
    attempt('string_prototype', () => { (String.prototype as any).polluted = 1; });
    attempt('json_stringify', () => { (JSON as any).stringify = () => 'forged'; });
    attempt('ctx_http_get', () => { ctx.http.get = () => ({ status: 200 }); });
    attempt('ctx_secrets', () => { ctx.secrets.get = () => 'stolen'; });
    attempt('ctx_operation', () => { ctx.operation = 'other'; });
    attempt('define_on_prototype', () => Object.defineProperty(Object.prototype, 'x', { value: 1 }));
    attempt('set_prototype_of_ctx', () => Object.setPrototypeOf(ctx, { polluted: 1 }));
    attempt('error_prepare_stack_trace', () => { (Error as any).prepareStackTrace = () => 'x'; });
    attempt('generator_prototype', () => {
      (Object.getPrototypeOf(function* () {}) as any).polluted = 1;
    });
    // the connector's own objects still work as usual (the override mistake is handled)
    const mine: any = new Error('m');
    mine.name = 'MyError';
    const obj: any = {};
    obj.toString = () => 'mine';
    out['own_objects'] = mine.name + ' ' + String(obj);
    return out;
"""
    )
    result = (await run(pool, egress, source)).value
    for name, outcome in result.items():
        if name != "own_objects":
            assert outcome.startswith("TypeError"), (name, outcome)
    assert result["own_objects"] == "MyError mine"
    check = (await run(pool, egress, source, operation="check")).value
    assert check == {"polluted": None, "arr": None, "json": '{"a":1}', "str": None}
    await healthy(pool, egress, source)


async def test_code_generation_and_global_escape_hatches(pool: SandboxPool, egress: Egress) -> None:
    source = connector(
        ATTEMPTS
        + """
    attempt('constructor_constructor', () => ({} as any).constructor.constructor('return this')());
    attempt('function_ctor', () => Function('return globalThis')());
    attempt('ctx_fn_ctor', () => (ctx.http.get as any).constructor('return Deno')());
    attempt('async_fn_ctor', () => (async function () {}).constructor('return 1'));
    attempt('generator_ctor', () => (function* () {}).constructor('yield 1'));
    attempt('eval', () => (0, (ctx as any).eval ?? eval)('1 + 1'));
    attempt('this_at_top', () => typeof (function (this: any) { return this; })());
    attempt('reflect_construct', () => Reflect.construct(Function, ['return this'])());
    return out;
"""
    )
    result = (await run(pool, egress, source)).value
    for name in (
        "constructor_constructor",
        "function_ctor",
        "ctx_fn_ctor",
        "async_fn_ctor",
        "generator_ctor",
        "reflect_construct",
    ):
        assert result[name].startswith("EvalError"), (name, result[name])
    assert result["eval"].startswith("ReferenceError"), result["eval"]
    assert result["this_at_top"] == "succeeded: undefined"
    await healthy(pool, egress, source)


HOST_APIS = [
    "Deno",
    "fetch",
    "setTimeout",
    "setInterval",
    "queueMicrotask",
    "globalThis",
    "self",
    "window",
    "WebAssembly",
    "SharedArrayBuffer",
    "Atomics",
    "Worker",
    "eval",
    "require",
    "process",
    "Buffer",
    "TextEncoder",
    "TextDecoder",
    "crypto",
    "navigator",
    "performance",
    "structuredClone",
    "WeakRef",
    "FinalizationRegistry",
    "BroadcastChannel",
    "Request",
    "Response",
    "XMLHttpRequest",
    "WebSocket",
    "caches",
    "localStorage",
    "atob",
    "btoa",
    "URL",
    "AbortController",
    "EventTarget",
    "MessageChannel",
    "reportError",
    "close",
    "alert",
    "prompt",
    "location",
    "Blob",
    "File",
    "ReadableStream",
]
TALE_GLOBALS = [
    "console",
    "JSON",
    "Object",
    "Array",
    "String",
    "Number",
    "Boolean",
    "Date",
    "Math",
    "parseInt",
    "parseFloat",
    "isNaN",
    "isFinite",
    "encodeURI",
    "encodeURIComponent",
    "decodeURI",
    "decodeURIComponent",
    "Error",
    "RegExp",
    "Promise",
]


async def test_only_tale_globals_no_deno(pool: SandboxPool, egress: Egress) -> None:
    names = HOST_APIS + TALE_GLOBALS
    checks = ", ".join(f"{json.dumps(n)}: typeof {n}" for n in names)
    source = connector(
        f"""
    const types: Record<string, string> = {{ {checks} }};
    const symbols = Object.getOwnPropertySymbols(Object.getPrototypeOf(ctx)).length;
    return {{ types, symbols, deno: Symbol.for('Deno.internal').toString() }};
"""
    )
    value = (await run(pool, egress, source)).value
    for name in HOST_APIS:
        assert value["types"][name] == "undefined", name
    for name in TALE_GLOBALS:
        assert value["types"][name] in ("object", "function"), name
    await healthy(pool, egress, source)


async def test_endless_loop_hits_the_cpu_limit(pool: SandboxPool, egress: Egress) -> None:
    source = connector("    for (;;) { try { } catch { } }")
    started = time.monotonic()
    with pytest.raises(LimitExceeded) as info:
        await run(pool, egress, source, limits=TIGHT)
    assert info.value.limit == "cpu_time_ms"
    assert time.monotonic() - started < 10
    await healthy(pool, egress, source)


async def test_a_blocking_wait_hits_the_wall_time(pool: SandboxPool, egress: Egress) -> None:
    # Atomics.wait does not exist; the closest a connector gets to blocking is spinning,
    # which the wall-time kill ends even when the CPU limit is far away.
    source = connector(
        "    if (typeof Atomics !== 'undefined') {\n"
        "      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);\n    }\n"
        "    const end = Date.now() + 60000; while (Date.now() < end) { }\n    return 1;"
    )
    with pytest.raises(ExecutionTimeout):
        await run(pool, egress, source, limits=Limits(wall_time_ms=1500, cpu_time_ms=60_000))
    await healthy(pool, egress, source)


@pytest.mark.parametrize(
    "attack",
    [
        "    const a: string[] = []; for (;;) a.push('x'.repeat(1024) + a.length);",
        "    const a: number[][] = []; for (;;) a.push(new Array(1e6).fill(1));",
        "    const b = new ArrayBuffer(2 ** 31); return new Uint8Array(b).fill(1).length;",
        "    let s = 'x'; for (;;) s = s + s;",
    ],
    ids=["strings", "arrays", "array_buffer", "doubling_string"],
)
async def test_memory_bombs(pool: SandboxPool, egress: Egress, attack: str) -> None:
    source = connector(attack)
    with pytest.raises(SandboxError) as info:
        await run(
            pool,
            egress,
            source,
            limits=Limits(wall_time_ms=30_000, cpu_time_ms=20_000, memory_bytes=64 * MIB),
        )
    error = info.value
    # The V8 heap limit (the worker dies), a refused allocation (RangeError in the
    # connector, reported as the memory limit) or a string too long for V8.
    assert (isinstance(error, LimitExceeded) and error.limit == "memory_bytes") or (
        isinstance(error, ConnectorError) and "Invalid string length" in error.message
    ), error
    await healthy(pool, egress, source)


async def test_huge_result(pool: SandboxPool, egress: Egress) -> None:
    source = connector("    return { big: 'x'.repeat(2 * 1024 * 1024) };")
    with pytest.raises(LimitExceeded) as info:
        await run(pool, egress, source, limits=Limits(max_result_bytes=1024 * 1024))
    assert info.value.limit == "max_result_bytes"
    await healthy(pool, egress, source)


@pytest.mark.parametrize(
    ("attack", "match"),
    [
        ("    return { n: 10n };", "BigInt"),
        ("    const a: any = {}; a.self = a; return a;", "circular"),
        ("    return () => 1;", "a function"),
        ("    return Symbol('s');", "a symbol"),
        ("    return { get x() { throw new Error('from a getter'); } };", "from a getter"),
        ("    return { toJSON() { throw new Error('from toJSON'); } };", "from toJSON"),
    ],
)
async def test_non_json_results(pool: SandboxPool, egress: Egress, attack: str, match: str) -> None:
    source = connector(attack)
    with pytest.raises(ConnectorError, match=match):
        await run(pool, egress, source)
    await healthy(pool, egress, source)


async def test_json_semantics_of_results(pool: SandboxPool, egress: Egress) -> None:
    source = connector(
        "    return { u: undefined, f: () => 1, nan: NaN, d: new Date(0), m: new Map([[1, 2]]) };"
    )
    assert (await run(pool, egress, source)).value == {"nan": None, "d": "1970-01-01T00:00:00.000Z", "m": {}}


async def test_forged_frames_on_stdout(pool: SandboxPool, egress: Egress) -> None:
    # The pipe is the worker's stdout; connector output only ever reaches the logs field.
    frame = (
        '\\u0000\\u0000\\u0000\\u0030\\u0000\\u0000\\u0000\\u0000{"type":"result","value":"forged","logs":[]}'
    )
    source = connector(
        f"""
    console.log('{frame}');
    console.error('{frame}');
    ctx.log('{frame}');
    for (let i = 0; i < 20000; i++) console.log('flood ' + i);
    return {{ real: true }};
"""
    )
    result = await run(pool, egress, source)
    assert result.value == {"real": True}
    assert '"value":"forged"' in result.logs[0]
    assert result.logs[-1].startswith("[log truncated at")
    await healthy(pool, egress, source)


async def test_thrown_non_errors_and_hostile_errors(pool: SandboxPool, egress: Egress) -> None:
    cases = {
        "string": "throw 'plain string';",
        "object": "throw { message: 'obj' };",
        "hostile": "throw new Proxy(new Error('p'), { get() { throw new Error('trap'); } });",
        "to_string": "throw { toString() { throw new Error('no'); } };",
    }
    for name, attack in cases.items():
        source = connector("    " + attack)
        with pytest.raises(ConnectorError) as info:
            await run(pool, egress, source)
        assert info.value.message, name
        await healthy(pool, egress, source)


async def test_secrets_do_not_outlive_their_call(pool: SandboxPool, egress: Egress) -> None:
    source = connector(
        "    const s = ctx.secrets.get('k') ?? null;\n"
        "    const keys = Object.keys(ctx.secrets);\n"
        "    return { s, keys };"
    )
    assert (await run(pool, egress, source, secrets={"k": "one"})).value == {"s": "one", "keys": ["get"]}
    assert (await run(pool, egress, source)).value == {"s": None, "keys": ["get"]}


async def test_request_cap(pool: SandboxPool, egress: Egress, server: LocalServer) -> None:
    source = connector(f"    for (let i = 0; i < 100; i++) ctx.http.get('{server.url}/hits');\n    return 1;")
    with pytest.raises(LimitExceeded) as info:
        await run(pool, egress, source, limits=Limits(max_http_requests=5))
    assert info.value.limit == "max_http_requests"
    await healthy(pool, egress, source)


async def test_hostile_http_arguments(pool: SandboxPool, egress: Egress, server: LocalServer) -> None:
    source = connector(
        ATTEMPTS
        + f"""
    attempt('url_object', () => ctx.http.get({{ toString() {{ return '{server.url}/json'; }} }} as any));
    attempt('long_url', () => ctx.http.get('{server.url}/' + 'x'.repeat(9000)));
    attempt('headers_array', () => ctx.http.get('{server.url}/json', {{ headers: [1, 2] as any }}));
    attempt('bad_base64', () => ctx.http.post('{server.url}/json', {{ binaryBody: '@@@' }}));
    attempt('two_bodies', () => ctx.http.post('{server.url}/json', {{ body: 'a', binaryBody: 'YQ==' }}));
    attempt('response_type', () => ctx.http.get('{server.url}/json', {{ responseType: 'blob' as any }}));
    return out;
"""
    )
    result = (await run(pool, egress, source)).value
    for name, outcome in result.items():
        assert outcome.startswith(("TypeError", "RangeError")), (name, outcome)
    await healthy(pool, egress, source)


async def test_deep_recursion(pool: SandboxPool, egress: Egress) -> None:
    source = connector("    const f = (n: number): number => f(n + 1) + 1;\n    return f(0);")
    with pytest.raises(ConnectorError, match="call stack"):
        await run(pool, egress, source)
    await healthy(pool, egress, source)


async def test_failure_while_talking_to_the_host_does_not_desynchronise_the_pipe(
    pool: SandboxPool, egress: Egress, server: LocalServer
) -> None:
    # Each level makes a request until the stack overflows somewhere inside ctx.http: the
    # worker may then be out of step with the host, so it asks to be replaced (discard).
    source = connector(
        "    let max = 0;\n"
        "    const probe = (n: number): number => { max = n; return probe(n + 1) + 1; };\n"
        "    try { probe(0); } catch { }\n"
        f"    const f = (n: number): number => {{ if (n > max - 300) ctx.http.get('{server.url}/hits');"
        " return f(n + 1) + 1; };\n"
        "    try { return f(0); } catch (e: any) { return { caught: String(e && e.message) }; }"
    )
    for _ in range(2):
        with contextlib.suppress(SandboxError):  # either outcome is fine; the next call must work
            await run(pool, egress, source, limits=Limits(max_http_requests=100_000, wall_time_ms=60_000))
        await healthy(pool, egress, source)


async def test_work_left_after_returning_runs_inside_the_execution(pool: SandboxPool, egress: Egress) -> None:
    # Promise callbacks still pending when execute returns run before the answer (their
    # logs are this execution's), never during the next execution.
    source = connector(
        "    Promise.reject(new Error('nobody handles this'));\n"
        "    let n = 0;\n"
        "    const spin = (): Promise<void> =>\n"
        "      Promise.resolve().then(() => { n++; if (n < 1000) return spin(); ctx.log('late ' + n); });\n"
        "    spin();\n"
        "    return { returned: true };"
    )
    first = await run(pool, egress, source)
    assert first.value == {"returned": True} and first.logs == ["late 1000"]
    second = await run(pool, egress, source)
    assert second.logs == ["late 1000"]
    await healthy(pool, egress, source)


async def test_an_endless_microtask_chain_after_returning_hits_the_cpu_limit(
    pool: SandboxPool, egress: Egress
) -> None:
    source = connector(
        "    const spin = (): Promise<void> => Promise.resolve().then(spin);\n"
        "    spin();\n"
        "    return { returned: true };"
    )
    with pytest.raises(LimitExceeded) as info:
        await run(pool, egress, source, limits=TIGHT)
    assert info.value.limit == "cpu_time_ms"
    await healthy(pool, egress, source)
