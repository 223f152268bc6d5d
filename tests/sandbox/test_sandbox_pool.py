"""The sandbox pool with real worker processes and a real local HTTP server: ctx.http
round trips, logs, entrypoints, worker reuse, recycling, reaping, caps, versions,
hostile worker messages and the OS isolation layers."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from bollard.sandbox.errors import (
    ConnectorCompileError,
    ConnectorError,
    ExecutionTimeout,
    HttpRequestRefused,
    SandboxUnavailable,
)
from bollard.sandbox.job import Job, RunResult
from bollard.sandbox.limits import Limits
from bollard.sandbox.pool import SandboxPool
from bollard.sandbox.protocol import HttpRequest, HttpResponse
from tests.support.pool_runs import run_source
from tests.support.standin import Egress, LocalServer

pytestmark = pytest.mark.asyncio(loop_scope="module")

FAST = Limits(wall_time_ms=20_000, cpu_time_ms=5_000)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool() -> AsyncIterator[SandboxPool]:
    p = SandboxPool(workers_per_integration=2)
    yield p
    await p.close()


async def until(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Wait (polling) until ``condition()`` holds; fail after ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.01)


async def run(pool: SandboxPool, egress: Any, source: str, **overrides: Any) -> RunResult:
    """One run of ``source`` (dedented) under the key ``pool-test:v1`` and :data:`FAST`
    unless ``overrides`` say otherwise."""
    defaults = {"key": "pool-test:v1", "limits": FAST, "dedent": True}
    return await run_source(pool, egress, source, **{**defaults, **overrides})


HTTP_CONNECTOR = """
def execute(ctx):
    base = ctx.params["base"]
    op = ctx.operation
    if op == "get_json":
        r = ctx.http.get(base + "/json", params={"limit": 10, "flag": True, "tags": ["a", "b"], "skip": None},
                         headers={"X-Token": ctx.secrets.get("token")})
        return {"status": r.status, "status_text": r.status_text, "ctype": r.headers.get("content-type"),
                "server": r.headers.get("x-test-server"), "body": r.body, "json": r.json(),
                "is_text": isinstance(r.text(), str)}
    if op == "not_found":
        r = ctx.http.get(base + "/status/404")
        return {"status": r.status, "body": r.body}
    if op == "post_json":
        r = ctx.http.post(base + "/json", json={"a": [1, 2.5, None, True]})
        return r.body
    if op == "put_text":
        return ctx.http.put(base + "/json", body="hello", headers={"Content-Type": "text/plain"}).body
    if op == "patch_binary":
        return ctx.http.patch(base + "/json", binary_body=ctx.base64_encode("bin")).body
    if op == "delete":
        return ctx.http.delete(base + "/json").body["method"]
    if op == "latin1":
        r = ctx.http.get(base + "/text")
        return {"body": r.body, "text": r.text()}
    if op == "base64":
        r = ctx.http.get(base + "/bytes", params={"n": 4}, response_type="base64")
        return r.body
    if op == "refused":
        try:
            ctx.http.get("https://elsewhere.example/")
        except Exception as e:
            return {"caught": str(e), "code": e.code}
    if op == "refused_surface":
        try:
            ctx.http.get("https://elsewhere.example/")
        except Exception as e:
            seen = {"args": list(e.args), "message": "hidden", "logs": "hidden"}
            try:
                seen["message"] = e.message
            except AttributeError:
                pass
            try:
                seen["logs"] = e.logs
            except AttributeError:
                pass
            return seen
    if op == "refused_uncaught":
        ctx.http.get("https://elsewhere.example/")
    if op == "big":
        try:
            ctx.http.get(base + "/bytes", params={"n": 5000})
        except Exception as e:
            return {"caught": str(e), "code": e.code}
    if op == "three":
        for i in range(3):
            ctx.http.get(base + "/json")
        return ctx.http.get(base + "/hits").body["hits"]
    raise Exception("unknown op " + op)
"""


async def test_get_returns_plain_response(pool: SandboxPool, egress: Egress, server: LocalServer) -> None:
    r = await run(
        pool,
        egress,
        HTTP_CONNECTOR,
        operation="get_json",
        params={"base": server.url},
        secrets={"token": "t0k"},
    )
    v = r.value
    assert (v["status"], v["status_text"], v["ctype"], v["server"]) == (
        200,
        "OK",
        "application/json",
        "yes",
    )
    assert v["body"] == v["json"] and v["is_text"] is True
    assert v["body"]["query"] == {"limit": ["10"], "flag": ["true"], "tags": ["a", "b"]}
    assert v["body"]["headers"]["x-token"] == "t0k"
    assert r.http_requests == 1 and r.duration_ms > 0


async def test_non_2xx_is_returned_not_raised(pool: SandboxPool, egress: Egress, server: LocalServer) -> None:
    r = await run(pool, egress, HTTP_CONNECTOR, operation="not_found", params={"base": server.url})
    assert r.value == {"status": 404, "body": {"error": "status 404"}}


@pytest.mark.parametrize(
    ("operation", "method", "body"),
    [
        ("post_json", "POST", b'{"a":[1,2.5,null,true]}'),
        ("put_text", "PUT", b"hello"),
        ("patch_binary", "PATCH", b"bin"),
    ],
)
async def test_request_bodies(
    pool: SandboxPool, egress: Egress, server: LocalServer, operation: str, method: str, body: bytes
) -> None:
    import base64
    import json

    r = await run(pool, egress, HTTP_CONNECTOR, operation=operation, params={"base": server.url})
    assert r.value["method"] == method
    sent = base64.b64decode(r.value["body_b64"])
    assert (json.loads(sent) == json.loads(body)) if operation == "post_json" else sent == body


async def test_delete_and_response_types(pool: SandboxPool, egress: Egress, server: LocalServer) -> None:
    base = {"base": server.url}
    assert (await run(pool, egress, HTTP_CONNECTOR, operation="delete", params=base)).value == "DELETE"
    assert (await run(pool, egress, HTTP_CONNECTOR, operation="latin1", params=base)).value == {
        "body": "café",
        "text": "café",
    }
    assert (await run(pool, egress, HTTP_CONNECTOR, operation="base64", params=base)).value == "AAECAw=="


async def test_refused_request_is_catchable_with_host_message(
    pool: SandboxPool, egress: Egress, server: LocalServer
) -> None:
    r = await run(pool, egress, HTTP_CONNECTOR, operation="refused", params={"base": server.url})
    assert r.value == {
        "caught": "host elsewhere.example is not in allowedHosts",
        "code": "host_not_allowed",
    }


async def test_refusal_shows_connectors_only_code_and_args(
    pool: SandboxPool, egress: Egress, server: LocalServer
) -> None:
    # One class (sandbox.errors.HttpRequestRefused) on both sides: in connector code it
    # still shows only ``code`` and ``args``, not the host-side ``message``/``logs``.
    r = await run(pool, egress, HTTP_CONNECTOR, operation="refused_surface", params={"base": server.url})
    assert r.value == {
        "args": ["host elsewhere.example is not in allowedHosts"],
        "message": "hidden",
        "logs": "hidden",
    }


async def test_uncaught_refusal_keeps_the_handler_code(
    pool: SandboxPool, egress: Egress, server: LocalServer
) -> None:
    with pytest.raises(HttpRequestRefused) as info:
        await run(pool, egress, HTTP_CONNECTOR, operation="refused_uncaught", params={"base": server.url})
    assert info.value.code == "host_not_allowed"
    assert info.value.message == "host elsewhere.example is not in allowedHosts"


async def test_response_over_the_limit_is_refused(
    pool: SandboxPool, egress: Egress, server: LocalServer
) -> None:
    limits = Limits(max_response_bytes=4096)
    r = await run(pool, egress, HTTP_CONNECTOR, operation="big", params={"base": server.url}, limits=limits)
    assert r.value["code"] == "limit_exceeded" and "4096 bytes" in r.value["caught"]


async def test_large_response_and_result(pool: SandboxPool, egress: Egress, server: LocalServer) -> None:
    # Above the pool's 1 MiB threshold: encoded and parsed off the event loop.
    r = await run(
        pool,
        egress,
        """
        def execute(ctx):
            r = ctx.http.get(ctx.params["base"] + "/bytes", params={"n": 3000000}, response_type="base64")
            return {"b64": len(r.body), "text": "é" * 1500000}
    """,
        params={"base": server.url},
    )
    assert r.value == {"b64": 4000000, "text": "é" * 1500000}


async def test_one_execution_runs_the_code_once(
    pool: SandboxPool, egress: Egress, server: LocalServer
) -> None:
    before = server.hits
    r = await run(pool, egress, HTTP_CONNECTOR, operation="three", params={"base": server.url})
    # Three requests, then /hits: the connector was not re-run per round trip.
    assert r.value == before + 4 and r.http_requests == 4 and server.hits == before + 4


async def test_logs_print_and_ctx_log(pool: SandboxPool, egress: Egress) -> None:
    r = await run(
        pool,
        egress,
        """
        def execute(ctx):
            print("a", 1, sep="-")
            print("no newline", end="")
            ctx.log("from ctx")
            ctx.log({"k": 1})
            return printed
    """,
    )
    assert r.logs == ["a-1", "no newline", "from ctx", "{'k': 1}"]
    assert r.value == "a-1\nno newline"


async def test_logs_are_capped(pool: SandboxPool, egress: Egress) -> None:
    r = await run(
        pool,
        egress,
        """
        def execute(ctx):
            for i in range(100000):
                print("line", i)
            return "done"
    """,
        limits=Limits(max_log_bytes=1000),
    )
    assert r.value == "done"
    assert r.logs[-1] == "[log truncated at 1000 bytes]"
    assert sum(len(x) + 1 for x in r.logs[:-1]) <= 1000


async def test_ctx_fields_and_helpers(pool: SandboxPool, egress: Egress) -> None:
    r = await run(
        pool,
        egress,
        """
        def execute(ctx):
            ctx.params["nested"]["x"] = 2
            return {"op": ctx.operation, "params": ctx.params, "enc": ctx.base64_encode("héllo"),
                    "dec": ctx.base64_decode("aMOpbGxv"), "missing": ctx.secrets.get("nope"),
                    "default": ctx.secrets.get("nope", "d")}
    """,
        operation="list_items",
        params={"nested": {"x": 1}, "n": [1.5, None]},
    )
    assert r.value == {
        "op": "list_items",
        "params": {"nested": {"x": 2}, "n": [1.5, None]},
        "enc": "aMOpbGxv",
        "dec": "héllo",
        "missing": None,
        "default": "d",
    }


async def test_params_are_a_copy(pool: SandboxPool, egress: Egress) -> None:
    params = {"items": [1, 2]}
    await run(
        pool,
        egress,
        """
        def execute(ctx):
            ctx.params["items"].append(3)
            return None
    """,
        params=params,
    )
    assert params == {"items": [1, 2]}


CONNECTOR_WITH_TEST = """
def test_connection(ctx):
    return {"status": "ok"}

def execute(ctx):
    return 1
"""


async def test_entrypoints(pool: SandboxPool, egress: Egress) -> None:
    assert (await run(pool, egress, CONNECTOR_WITH_TEST, entrypoint="test_connection")).value == {
        "status": "ok"
    }
    alias = CONNECTOR_WITH_TEST.replace("def test_connection", "def testConnection")
    assert (await run(pool, egress, alias, entrypoint="test_connection", key="alias:v1")).value == {
        "status": "ok"
    }
    with pytest.raises(ConnectorError, match=r"does not define test_connection\(ctx\)"):
        await run(
            pool,
            egress,
            "def execute(ctx):\n    return 1\n",
            entrypoint="test_connection",
            key="notest:v1",
        )
    with pytest.raises(ValueError):
        await run(pool, egress, CONNECTOR_WITH_TEST, entrypoint="other")


async def test_connector_exception_message_and_line(pool: SandboxPool, egress: Egress) -> None:
    with pytest.raises(ConnectorError) as info:
        await run(
            pool,
            egress,
            """
            def execute(ctx):
                x = 1
                raise Exception("Unknown operation: " + ctx.operation)
        """,
            operation="frob",
        )
    assert info.value.code == "connector_error"
    assert info.value.message == "Unknown operation: frob" and info.value.line == 4
    with pytest.raises(ConnectorError) as info:
        await run(pool, egress, "def execute(ctx):\n    return {}['missing']\n")
    assert info.value.message == "KeyError: 'missing'"
    # A connector's own exception class: its message, as for Exception.
    with pytest.raises(ConnectorError, match="^rate limited$"):
        await run(
            pool,
            egress,
            """
            class ApiError(Exception):
                pass
            def execute(ctx):
                raise ApiError("rate limited")
        """,
        )


async def test_compile_error_raised_before_any_worker(pool: SandboxPool, egress: Egress) -> None:
    with pytest.raises(ConnectorCompileError) as info:
        await run(pool, egress, "import os\ndef execute(ctx):\n    return 1\n", key="broken:v1")
    assert info.value.errors == [
        "Line 1: import of 'os' is not allowed (connectors may import: base64, collections, "
        "datetime, decimal, hashlib, hmac, itertools, json, math, re, time, urllib.parse, uuid)."
    ]
    assert "broken:v1" not in pool.stats()


async def test_allowed_modules_work_in_the_worker(pool: SandboxPool, egress: Egress) -> None:
    r = await run(
        pool,
        egress,
        """
        import json, re, math, datetime, time, base64, hashlib, hmac, decimal, collections, itertools, uuid
        import urllib.parse
        from urllib.parse import urlencode

        def execute(ctx):
            sig = hmac.new("k".encode(), "m".encode(), hashlib.sha256).hexdigest()
            when = datetime.datetime.strptime("2024-05-01", "%Y-%m-%d").date().isoformat()
            return {
                "json": json.loads(json.dumps({"a": [1]})),
                "re": re.findall(r"\\d+", "a1b22"),
                "math": math.floor(math.pi),
                "when": when,
                "clock": time.time() > 0,
                "strp": time.strptime("2024", "%Y").tm_year,
                "b64": base64.b64encode("x".encode()).decode(),
                "sig": sig[:8],
                "digests": [len(hashlib.new(n, "x".encode()).hexdigest()) for n in
                            ("md5", "sha1", "sha3_256", "blake2b", "sha512")],
                "dec": str(decimal.Decimal("1.10") + decimal.Decimal("2.205")),
                "counter": collections.Counter("aab").most_common(1)[0][0],
                "chain": list(itertools.chain([1], [2])),
                "uuid": len(str(uuid.uuid4())),
                "q": urllib.parse.quote("a b") + "&" + urlencode({"x": 1}),
                "idna": "bücher.example".encode("idna").decode(),
                "netloc": urllib.parse.urlsplit("https://bücher.example/x").hostname,
                "named": re.sub("\\N{LATIN SMALL LETTER E WITH ACUTE}", "e", "café"),
                "dt": datetime.datetime(2024, 1, 2, 3, 4).strftime("%Y %H")
                + str(datetime.datetime(2024, 1, 2).timetuple().tm_yday),
            }
    """,
    )
    assert r.value == {
        "json": {"a": [1]},
        "re": ["1", "22"],
        "math": 3,
        "when": "2024-05-01",
        "clock": True,
        "strp": 2024,
        "b64": "eA==",
        "sig": hmac.new(b"k", b"m", hashlib.sha256).hexdigest()[:8],
        "digests": [32, 40, 64, 128, 128],
        "dec": "3.305",
        "counter": "a",
        "chain": [1, 2],
        "uuid": 36,
        "q": "a%20b&x=1",
        "idna": "xn--bcher-kva.example",
        "netloc": "bücher.example",
        "named": "cafe",
        "dt": "2024 032",
    }


async def test_worker_is_reused_and_globals_are_fresh(pool: SandboxPool, egress: Egress) -> None:
    source = """
        SEEN = []
        def execute(ctx):
            SEEN.append(ctx.params["v"])
            return SEEN
    """
    results = [(await run(pool, egress, source, key="reuse:v1", params={"v": i})).value for i in range(5)]
    assert results == [[0], [1], [2], [3], [4]]
    stats = pool.stats()["reuse:v1"]
    assert stats["idle"] == 1 and stats["busy"] == 0


async def test_worker_recycled_after_max_executions(egress: Egress) -> None:
    pool = SandboxPool(max_executions_per_worker=2)
    try:
        pids = []
        for _ in range(3):
            for _ in range(2):
                await run(pool, egress, "def execute(ctx):\n    return 1\n", key="recycle:v1")
            # Its replacement started with its last execution; once it is ready, the old
            # worker retires and the replacement is the one idle worker.
            await until(
                lambda: (
                    pool.stats()["recycle:v1"]["starting"] == 0 and pool.stats()["recycle:v1"]["idle"] == 1
                )
            )
            pids.extend(pool.stats()["recycle:v1"]["idle_pids"])
        assert len(set(pids)) == 3
        for pid in pids[:-1]:
            await until(lambda pid=pid: not Path(f"/proc/{pid}").exists())
    finally:
        await pool.close()


async def test_no_caller_waits_for_a_spawn_at_a_recycle(egress: Egress) -> None:
    pool = SandboxPool(max_executions_per_worker=3, workers_per_integration=1)
    try:
        for _ in range(30):  # ten lifetimes of a worker
            assert (await run(pool, egress, "def execute(ctx):\n    return 1\n", key="hot:v1")).value == 1
        stats = pool.stats()["hot:v1"]
        assert stats["cold_starts"] == 1  # only the very first call started a worker
        await until(lambda: pool.stats()["hot:v1"]["starting"] == 0)
        # the group stays within its cap once the replacements settled
        assert pool.stats()["hot:v1"]["idle"] + pool.stats()["hot:v1"]["busy"] == 1
        # one replacement per worker lifetime, no more: 30 executions of 3 each is ten
        # workers (a worker kept serving while its replacement starts may do a few more)
        stopped = sum(pool.counters()["kills"].values())
        assert 1 <= stopped <= 10, pool.counters()
    finally:
        await pool.close()


async def test_prewarm_starts_a_worker_before_the_first_call(egress: Egress) -> None:
    pool = SandboxPool()
    source = "def execute(ctx):\n    return 2\n"
    try:
        assert pool.prewarm(key="warm:v1", tenant="default", source=source)
        assert not pool.prewarm(key="warm:v1", tenant="default", source=source)  # one is starting
        await until(lambda: pool.stats()["warm:v1/default"]["idle"] == 1)
        result = await pool.run(
            Job(
                key="warm:v1",
                tenant="default",
                source=source,
                entrypoint="execute",
                operation="op",
                params={},
                secrets={},
                http_handler=egress,
            )
        )
        assert result.value == 2
        assert pool.stats()["warm:v1/default"]["cold_starts"] == 0
    finally:
        await pool.close()


async def test_idle_workers_are_reaped(egress: Egress) -> None:
    pool = SandboxPool(idle_timeout_s=0.2)
    try:
        await run(pool, egress, "def execute(ctx):\n    return 1\n", key="reap:v1")
        (pid,) = pool.stats()["reap:v1"]["idle_pids"]
        await until(lambda: "reap:v1" not in pool.stats())
        await until(lambda: not Path(f"/proc/{pid}").exists())
    finally:
        await pool.close()


async def test_new_version_retires_old_workers(pool: SandboxPool, egress: Egress) -> None:
    v1 = "def execute(ctx):\n    return 'v1'\n"
    v2 = "def execute(ctx):\n    return 'v2'\n"
    assert (await run(pool, egress, v1, key="versioned:aaa")).value == "v1"
    (old_pid,) = pool.stats()["versioned:aaa"]["idle_pids"]
    assert (await run(pool, egress, v2, key="versioned:bbb")).value == "v2"
    assert "versioned:aaa" not in pool.stats()
    # Same key, changed source: new workers too.
    assert (await run(pool, egress, v1, key="versioned:bbb")).value == "v1"
    await until(lambda: not Path(f"/proc/{old_pid}").exists())


async def test_cap_per_key_makes_callers_wait(server: LocalServer) -> None:
    pool = SandboxPool(workers_per_integration=1)
    gate = asyncio.Event()
    egress = Egress(server)

    async def gated(request: HttpRequest) -> HttpResponse:
        await gate.wait()
        return await egress(request)

    source = "def execute(ctx):\n    return ctx.http.get(ctx.params['url']).status\n"
    try:
        calls = [
            asyncio.create_task(
                pool.run(
                    Job(
                        key="cap:v1",
                        source=source,
                        entrypoint="execute",
                        operation="x",
                        params={"url": server.url + "/json"},
                        secrets={},
                        http_handler=gated,
                        limits=FAST,
                    )
                )
            )
            for _ in range(3)
        ]
        await until(lambda: pool.stats().get("cap:v1", {}).get("waiting") == 2)
        stats = pool.stats()["cap:v1"]
        assert (stats["busy"], stats["waiting"]) == (1, 2)  # one running, two waiting
        gate.set()
        results = await asyncio.wait_for(asyncio.gather(*calls), 30)
        assert [r.value for r in results] == [200, 200, 200]
        assert pool.stats()["cap:v1"]["idle"] == 1 and len(egress.requests) == 3
        # Waiting longer than the wall time is a timeout.
        gate.clear()
        first = asyncio.create_task(
            pool.run(
                Job(
                    key="cap:v1",
                    source=source,
                    entrypoint="execute",
                    operation="x",
                    params={"url": server.url + "/json"},
                    secrets={},
                    http_handler=gated,
                    limits=FAST,
                )
            )
        )
        await until(lambda: pool.stats()["cap:v1"]["busy"] == 1)
        with pytest.raises(ExecutionTimeout, match="waiting for a free sandbox worker"):
            await run(
                pool,
                gated,
                source,
                key="cap:v1",
                params={"url": server.url + "/json"},
                limits=Limits(wall_time_ms=300),
            )
        gate.set()
        assert (await first).value == 200
    finally:
        await pool.close()
        await egress.close()


async def test_cancelled_call_kills_its_worker(pool: SandboxPool, server: LocalServer) -> None:
    entered = asyncio.Event()

    async def never(request: HttpRequest) -> HttpResponse:
        entered.set()
        await asyncio.sleep(3600)
        raise AssertionError

    source = (
        "def execute(ctx):\n    if ctx.operation == 'hang':\n        ctx.http.get('http://x/')\n"
        "    return 'ok'\n"
    )
    task = asyncio.create_task(run(pool, never, source, key="cancel:v1", operation="hang"))
    await asyncio.wait_for(entered.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert pool.stats()["cancel:v1"] == {
        "idle": 0,
        "busy": 0,
        "waiting": 0,
        "starting": 0,
        "cold_starts": 1,
        "idle_pids": [],
    }
    assert (await run(pool, never, source, key="cancel:v1")).value == "ok"


async def test_isolation_layers_reported(pool: SandboxPool, egress: Egress) -> None:
    await run(pool, egress, "def execute(ctx):\n    return 1\n")
    layers = pool.isolation_layers()
    for name in ("process", "closed_fds", "empty_environment", "empty_cwd", "rlimits"):
        assert layers[name] is True, name
    for name in ("network_namespace", "unprivileged_uid", "no_new_privs", "seccomp"):
        assert name in layers
    if os.geteuid() == 0:
        first, count = pool.uid_range
        assert first <= int(layers["unprivileged_uid"]) < first + count
        assert layers["network_namespace"] is True
    fresh = SandboxPool()
    assert fresh.isolation_layers() == {"process": True, "probed": False}
    assert (await fresh.probe())["process"] is True
    await fresh.close()


async def test_close_kills_running_workers(egress: Egress, server: LocalServer) -> None:
    pool = SandboxPool()
    gate, entered = asyncio.Event(), asyncio.Event()

    async def gated(request: HttpRequest) -> HttpResponse:
        entered.set()
        await gate.wait()
        return await egress(request)

    source = "def execute(ctx):\n    return ctx.http.get(ctx.params['url']).status\n"
    call = asyncio.create_task(
        run(pool, gated, source, key="closing:v1", params={"url": server.url + "/json"})
    )
    await asyncio.wait_for(entered.wait(), 30)  # the worker waits for its HTTP answer
    await pool.close()
    gate.set()
    with pytest.raises(SandboxUnavailable, match="closed"):
        await call
    with pytest.raises(SandboxUnavailable):
        await run(pool, egress, "def execute(ctx):\n    return 1\n")
    with pytest.raises(SandboxUnavailable):
        await run(pool, egress, "def execute(ctx):\n    return 1\n")


# --- hostile workers: a fake interpreter speaking the protocol badly ---------------------

ROGUE = r"""
import json, os, struct, sys
mode = os.environ.get("ROGUE_MODE") or open("/tmp/rogue-mode-%d" % os.getppid()).read()
def send(obj=None, raw=None, body=b""):
    payload = raw if raw is not None else json.dumps(obj).encode()
    os.write(1, struct.pack(">II", len(payload), len(body)) + payload + body)
def recv():
    header = b""
    while len(header) < 8:
        header += os.read(0, 8 - len(header))
    n = sum(struct.unpack(">II", header))
    data = b""
    while len(data) < n:
        data += os.read(0, n - len(data))
    return data
send({"type": "ready", "layers": {"process": True}})
recv()
send({"type": "loaded", "ok": True, "errors": []})
recv()
if mode == "oversize":
    os.write(1, struct.pack(">II", 2**31, 0))
elif mode == "oversize_body":
    os.write(1, struct.pack(">II", 10, 2**31))
elif mode == "result_body":
    send({"type": "result", "value": 1, "logs": []}, body=b"x")
elif mode == "flood":
    send({"type": "result", "value": 1, "logs": []})
    try:
        for _ in range(1024):  # 64 MiB after the answer; blocks once the host stops reading
            os.write(1, b"\xff" * 65536)
    except OSError:
        pass
elif mode == "unannounced_body":
    send({"type": "http", "method": "GET", "url": "http://x/", "headers": {}}, body=b"x")
elif mode == "nan":
    send(raw=b'{"type": "result", "value": NaN, "logs": []}')
elif mode == "bad_http":
    send({"type": "http", "method": "CONNECT", "url": "http://x/", "headers": {}})
elif mode == "header_type":
    send({"type": "http", "method": "GET", "url": "http://x/", "headers": {"a": 1}})
elif mode == "fake_code":
    send({"type": "error", "kind": "http", "code": "needs_credentials", "message": "m", "logs": []})
elif mode == "bad_logs":
    send({"type": "result", "value": 1, "logs": [1, 2]})
elif mode == "unknown":
    send({"type": "shell", "cmd": "id"})
elif mode == "exit":
    sys.exit(3)
os.read(0, 1)
"""


@pytest.fixture(scope="module")
def rogue_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("rogue")
    script = folder / "rogue.py"
    script.write_text(ROGUE)
    launcher = folder / "python"
    launcher.write_text(f"#!/bin/sh\nexec {sys.executable} {script}\n")
    launcher.chmod(0o755)
    return launcher


@pytest.mark.parametrize(
    ("mode", "match", "kept"),
    [
        ("oversize", "broke the protocol", False),
        ("oversize_body", "broke the protocol", False),
        ("result_body", "broke the protocol", False),
        ("unannounced_body", "broke the protocol", False),
        ("nan", "broke the protocol", False),
        ("bad_http", "broke the protocol", False),
        ("header_type", "broke the protocol", False),
        ("fake_code", "^m$", True),  # a code the host never sent is not trusted
        ("bad_logs", "broke the protocol", False),
        ("unknown", "broke the protocol", False),
        ("exit", r"exited unexpectedly \(status 3\)", False),
    ],
)
async def test_hostile_worker_messages(
    rogue_python: Path, egress: Egress, mode: str, match: str, kept: bool
) -> None:
    pool = SandboxPool(python=str(rogue_python))
    Path(f"/tmp/rogue-mode-{os.getpid()}").write_text(mode)
    try:
        with pytest.raises(ConnectorError, match=match) as info:
            await run(pool, egress, "def execute(ctx):\n    return 1\n", key=f"rogue-{mode}:v1")
        assert info.value.code == "connector_error"
        assert pool.stats()[f"rogue-{mode}:v1"]["idle"] == (1 if kept else 0)
    finally:
        Path(f"/tmp/rogue-mode-{os.getpid()}").unlink()
        await pool.close()


async def test_worker_flooding_its_pipe_is_not_buffered(rogue_python: Path, egress: Egress) -> None:
    from bollard.sandbox.pipe import MAX_READ_CHUNK, READ_CHUNK

    pool = SandboxPool(python=str(rogue_python))
    Path(f"/tmp/rogue-mode-{os.getpid()}").write_text("flood")
    source = "def execute(ctx):\n    return 1\n"
    try:
        assert (await run(pool, egress, source, key="rogue-flood:v1")).value == 1
        worker = pool._groups[("rogue-flood:v1", "")].idle[0]
        await asyncio.sleep(0.5)  # the worker keeps writing; the host stops reading
        assert len(worker.pipe._buffer) <= READ_CHUNK + MAX_READ_CHUNK
        with pytest.raises(ConnectorError, match="broke the protocol"):
            await run(pool, egress, source, key="rogue-flood:v1")
    finally:
        Path(f"/tmp/rogue-mode-{os.getpid()}").unlink()
        await pool.close()


# --- the OS layers, as seen by code that escaped the interpreter -----------------------

ESCAPED = r"""
import json, os, socket, sys
from bollard.sandbox import isolation
port = int(sys.argv[1])
layers = isolation.isolate(memory_bytes=64 * 1024 * 1024, cpu_budget_s=5)
results = {"layers": layers, "uid": os.getuid(), "env": dict(os.environ), "cwd_entries": None}
try:
    results["cwd_entries"] = os.listdir(".")
except OSError as e:
    results["cwd_entries"] = type(e).__name__
def attempt(name, fn):
    try:
        fn()
        results[name] = "succeeded"
    except Exception as e:
        results[name] = type(e).__name__
attempt("connect", lambda: socket.create_connection(("127.0.0.1", port), timeout=2))
attempt("fork", lambda: os._exit(0) if os.fork() == 0 else None)
results["file"] = "/tmp/escaped-%d" % os.getpid()
def write_file():
    with open(results["file"], "w") as f:
        f.write("x" * 100)
attempt("write_file", write_file)
attempt("create_in_cwd", lambda: open("x", "w"))
attempt("read_root", lambda: open("/root/.bashrc").read())
attempt("read_etc", lambda: open("/etc/passwd").read())
attempt("big_alloc", lambda: bytearray(200 * 1024 * 1024))
attempt("kill_parent", lambda: os.kill(os.getppid(), 0))
os.write(1, json.dumps(results).encode())
"""


@pytest.mark.filterwarnings("ignore:The test <Function")
def test_escaped_code_is_contained_by_os_layers(server: LocalServer, tmp_path: Path) -> None:
    import json

    script = tmp_path / "escaped.py"
    script.write_text(ESCAPED)
    out = subprocess.run(
        [sys.executable, "-I", "-B", str(script), str(server.port)],
        capture_output=True,
        env={},
        cwd="/",
        timeout=60,
    )
    results = json.loads(out.stdout)
    Path(results["file"]).unlink(missing_ok=True)
    layers = results["layers"]
    assert results["env"] == {}
    assert results["cwd_entries"] in ([], "FileNotFoundError", "PermissionError")
    assert results["create_in_cwd"] != "succeeded"
    assert results["write_file"] != "succeeded"
    assert results["big_alloc"] == "MemoryError"
    assert results["fork"] != "succeeded"
    if layers["network_namespace"] is True or layers["seccomp"] is True:
        assert results["connect"] != "succeeded"
    if layers["unprivileged_uid"] == "65534":
        assert results["uid"] == 65534
        assert results["read_root"] == "PermissionError"
    if layers["seccomp"] is True:
        assert results["kill_parent"] == "PermissionError"
    if layers["landlock"] != "unavailable" and str(layers["landlock"]).startswith("abi"):
        assert results["read_etc"] == "PermissionError"
