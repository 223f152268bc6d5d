"""Attacks on the sandbox, each refused at load (a compile error with its line number)
or contained at run time (a clear error with the right code), and each followed by a
benign execution of the same key that must succeed.

Real worker processes, real limits, a real local HTTP server behind the handler.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from bollard.sandbox.errors import ConnectorCompileError, SandboxError
from bollard.sandbox.job import RunResult
from bollard.sandbox.limits import Limits
from bollard.sandbox.policy import compile_connector
from bollard.sandbox.pool import SandboxPool
from tests.support.pool_runs import run_source
from tests.support.standin import Egress, LocalServer

pytestmark = pytest.mark.asyncio(loop_scope="module")

LIMITS = Limits(wall_time_ms=20_000, cpu_time_ms=5_000)
TIGHT = Limits(wall_time_ms=20_000, cpu_time_ms=400, memory_bytes=64 * 1024 * 1024)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool() -> AsyncIterator[SandboxPool]:
    p = SandboxPool(workers_per_integration=1)
    yield p
    await p.close()


def connector(attack: str, prelude: str = "") -> str:
    """A connector whose ``ping`` operation is benign and any other runs ``attack``."""
    return (
        textwrap.dedent(prelude)
        + "\ndef execute(ctx):\n    if ctx.operation == 'ping':\n        return {'pong': True}\n"
        + textwrap.indent(textwrap.dedent(attack).strip("\n"), "    ")
        + "\n"
    )


async def run(pool: SandboxPool, egress: Any, source: str, **overrides: Any) -> RunResult:
    """One run of ``source`` (a key per source) with the ``attack`` operation under
    :data:`LIMITS` unless ``overrides`` say otherwise."""
    defaults = {"key_prefix": "attack", "operation": "attack", "limits": LIMITS}
    return await run_source(pool, egress, source, **{**defaults, **overrides})


async def contained(
    pool: SandboxPool,
    egress: Any,
    source: str,
    code: str,
    match: str,
    *,
    limits: Limits = LIMITS,
    params: dict[str, Any] | None = None,
) -> SandboxError:
    """Run the attack: it must fail with ``code`` and a message matching ``match``; then
    the benign operation of the same key must succeed."""
    with pytest.raises(SandboxError) as info:
        await run(pool, egress, source, limits=limits, params=params)
    assert info.value.code == code, info.value.message
    assert re.search(match, info.value.message), info.value.message
    assert (await run(pool, egress, source, operation="ping")).value == {"pong": True}
    return info.value


async def result_then_benign(pool: SandboxPool, egress: Any, source: str, **kw: Any) -> Any:
    """Run an attack that the connector itself observes failing; return its value."""
    value = (await run(pool, egress, source, **kw)).value
    assert (await run(pool, egress, source, operation="ping")).value == {"pong": True}
    return value


# --- refused at load ---------------------------------------------------------------------

REFUSED = [
    (
        "dunder_subclasses",
        "x = ().__class__.__bases__[0].__subclasses__()",
        5,
        r'"__class__" is an invalid attribute name',
    ),
    ("dunder_mro", "return (1).__class__.__mro__[1].__subclasses__()", 5, r'"__class__"'),
    ("getattr_computed", "return getattr((), '__cl' + 'ass__')", 5, r"'getattr' is not available"),
    ("type_builtin", "return type(ctx)", 5, r"'type' is not available"),
    ("vars", "return vars(ctx)", 5, r"'vars' is not available"),
    ("globals", "return globals()", 5, r"'globals' is not available"),
    ("locals_dir", "return [locals(), dir()]", 5, r"'locals' is not available"),
    ("eval", "return eval('1 + 1')", 5, r"Eval calls are not allowed"),
    ("exec", "exec('import os')", 5, r"Exec calls are not allowed"),
    ("compile", "return compile('1', 'x', 'eval')", 5, r"'compile' is not available"),
    ("open_read", "return open('/etc/passwd').read()", 5, r"'open' is not available"),
    ("open_write", "open('out.txt', 'w').write('data')", 5, r"'open' is not available"),
    ("dunder_import", "os = __import__('os')", 5, r'"__import__" is an invalid variable name'),
    ("breakpoint", "breakpoint()", 5, r"breakpoint"),
    (
        "builtins_dict",
        "return __builtins__['open']",
        5,
        r'"__builtins__" is an invalid variable name',
    ),
    ("import_os", "import os", 5, r"import of 'os' is not allowed"),
    ("import_subprocess", "import subprocess", 5, r"import of 'subprocess' is not allowed"),
    ("from_os", "from os import system", 5, r"import of 'os' is not allowed"),
    ("import_string_formatter", "import string", 5, r"import of 'string' is not allowed"),
    ("json_submodule", "from json import decoder", 5, r"cannot import name 'decoder' from 'json'"),
    ("time_sleep", "from time import sleep", 5, r"cannot import name 'sleep' from 'time'"),
    ("decimal_context", "from decimal import getcontext", 5, r"cannot import name 'getcontext'"),
    ("uuid1_runs_commands", "from uuid import uuid1", 5, r"cannot import name 'uuid1'"),
    ("relative_import", "from . import secrets", 5, r"relative imports are not allowed"),
    (
        "gen_frame",
        "g = (i for i in [1])\nreturn g.gi_frame.f_back.f_globals",
        6,
        r'"gi_frame" is a restricted name',
    ),
    (
        "traceback_frame",
        "try:\n    1 / 0\nexcept Exception as e:\n    return e.__traceback__.tb_frame",
        8,
        r'"__traceback__" is an invalid attribute name',
    ),
    ("tb_frame", "tb = None\nreturn tb.tb_frame.f_globals", 6, r'"tb_frame" is a restricted name'),
    ("coroutine_frame", "c = None\nreturn c.cr_frame", 6, r'"cr_frame" is a restricted name'),
    ("async_gen_frame", "a = None\nreturn a.ag_frame", 6, r'"ag_frame" is a restricted name'),
    ("async_def", "async def f():\n    pass", 5, r"AsyncFunctionDef statements are not allowed"),
    ("fstring_dunder", "return f'{ctx.__class__}'", 5, r'"__class__" is an invalid attribute name'),
    ("ctx_private", "return ctx._log", 5, r'"_log" is an invalid attribute name'),
    ("http_private", "return ctx.http._send", 5, r'"_send" is an invalid attribute name'),
    ("secrets_private", "return ctx.secrets._values", 5, r'"_values" is an invalid attribute name'),
    (
        "bound_method_self",
        "return ctx.http.get.__self__",
        5,
        r'"__self__" is an invalid attribute name',
    ),
    ("function_globals", "f = lambda: 1\nreturn f.__globals__", 6, r'"__globals__"'),
    ("system_exit", "raise SystemExit(0)", 5, r"'SystemExit' is not available"),
    ("base_exception", "raise BaseException('x')", 5, r"'BaseException' is not available"),
    ("keyboard_interrupt", "raise KeyboardInterrupt", 5, r"'KeyboardInterrupt' is not available"),
    ("exit", "exit(1)", 5, r"'exit' is not available"),
    (
        "match_class_pattern",
        "match ctx:\n    case object(operation=x):\n        return x",
        5,
        r"Match statements are not allowed",
    ),
    (
        "except_star",
        "try:\n    pass\nexcept* Exception:\n    pass",
        5,
        r"TryStar statements are not allowed",
    ),
]


@pytest.mark.parametrize(("name", "attack", "line", "message"), REFUSED, ids=[r[0] for r in REFUSED])
async def test_refused_at_load(
    pool: SandboxPool, egress: Egress, name: str, attack: str, line: int, message: str
) -> None:
    source = connector(attack)
    with pytest.raises(ConnectorCompileError) as info:
        compile_connector(source)
    assert any(e.startswith(f"Line {line}:") and re.search(message, e) for e in info.value.errors), (
        info.value.errors
    )
    with pytest.raises(ConnectorCompileError):
        await run(pool, egress, source)
    benign = connector("return 1")
    assert (await run(pool, egress, benign, operation="ping")).value == {"pong": True}


REFUSED_PRELUDE = [
    (
        "posonly_getattr_shadow",
        "def f(_getattr_=None, /):\n    return 1\n",
        2,
        r'"_getattr_" is an invalid',
    ),
    (
        "posonly_write_shadow",
        "def f(x, _write_=lambda o: o, /):\n    x.y = 1\n",
        2,
        r'"_write_" is an invalid',
    ),
    (
        "metaclass_keyword",
        "class A(metaclass=dict):\n    pass\n",
        2,
        r'keyword argument "metaclass"',
    ),
    (
        "dunder_method",
        "class A:\n    def __getattribute__(self, n):\n        return 1\n",
        3,
        r'"__getattribute__" is an invalid variable name',
    ),
    (
        "reduce_method",
        "class A:\n    def __reduce__(self):\n        return 1\n",
        3,
        r'"__reduce__"',
    ),
]


@pytest.mark.parametrize(
    ("name", "prelude", "line", "message"), REFUSED_PRELUDE, ids=[r[0] for r in REFUSED_PRELUDE]
)
async def test_refused_definitions(name: str, prelude: str, line: int, message: str) -> None:
    with pytest.raises(ConnectorCompileError) as info:
        compile_connector(connector("return 1", "\n" + prelude))
    assert any(e.startswith(f"Line {line}:") and re.search(message, e) for e in info.value.errors), (
        info.value.errors
    )


# --- contained at run time: escapes -------------------------------------------------------


async def test_str_format_field_traversal(pool: SandboxPool, egress: Egress) -> None:
    await contained(
        pool,
        egress,
        connector("return '{0.__class__.__mro__}'.format(1)"),
        "connector_error",
        r"str\.format\(\) is not available",
    )


async def test_str_format_map(pool: SandboxPool, egress: Egress) -> None:
    await contained(
        pool,
        egress,
        connector("return '{x.__class__}'.format_map({'x': ctx})"),
        "connector_error",
        r"str\.format\(\) is not available",
    )


async def test_str_format_through_type_and_subclass(pool: SandboxPool, egress: Egress) -> None:
    await contained(
        pool,
        egress,
        connector("return str.format('{0.__class__}', 1)"),
        "connector_error",
        r"str\.format\(\) is not available",
    )
    await contained(
        pool,
        egress,
        connector("return S('{0.__class__}').format(1)", "class S(str):\n    pass\n"),
        "connector_error",
        r"str\.format\(\) is not available",
    )


async def test_attribute_error_obj(pool: SandboxPool, egress: Egress) -> None:
    source = connector(
        """
        try:
            json.nope
        except AttributeError as e:
            return e.obj
    """,
        "import json\n",
    )
    await contained(pool, egress, source, "connector_error", r"AttributeError\.obj is not available")


async def test_type_mro_to_object(pool: SandboxPool, egress: Egress) -> None:
    await contained(
        pool,
        egress,
        connector("return repr(int.mro())"),
        "connector_error",
        r"type\.mro is not available",
    )


async def test_module_poisoning_does_not_persist(pool: SandboxPool, egress: Egress) -> None:
    source = connector(
        """
        if ctx.operation == "check":
            return [json.dumps({"a": 1}), math.pi > 3.14, sorted(["b", "a"])]
        caught = []
        for attack in ("dumps", "pi", "del", "sub"):
            try:
                if attack == "dumps":
                    json.dumps = lambda value: "pwned"
                elif attack == "pi":
                    math.pi = 3
                elif attack == "del":
                    del json.loads
                else:
                    re.sub = None
            except Exception as e:
                kind = 'TypeError' if isinstance(e, TypeError) else 'other'
                caught.append('AttributeError' if isinstance(e, AttributeError) else kind)
        return caught
    """,
        "import json, math, re\n",
    )
    assert await result_then_benign(pool, egress, source) == ["TypeError"] * 4
    # Same worker, next execution: the modules are intact.
    assert (await run(pool, egress, source, operation="check")).value == [
        '{"a": 1}',
        True,
        ["a", "b"],
    ]


async def test_shared_classes_and_constants_are_read_only(pool: SandboxPool, egress: Egress) -> None:
    source = connector(
        """
        caught = []
        for attack in range(4):
            try:
                if attack == 0:
                    Exception.note = ctx
                elif attack == 1:
                    collections.OrderedDict.stash = ctx
                elif attack == 2:
                    hashlib.algorithms_guaranteed.add("x")
                else:
                    dict.x = 1
            except Exception as e:
                kind = 'TypeError' if isinstance(e, TypeError) else 'other'
                caught.append('AttributeError' if isinstance(e, AttributeError) else kind)
        return caught
    """,
        "import collections, hashlib\n",
    )
    assert await result_then_benign(pool, egress, source) == [
        "TypeError",
        "TypeError",
        "AttributeError",
        "TypeError",
    ]


async def test_globals_are_fresh_per_execution(pool: SandboxPool, egress: Egress) -> None:
    source = connector(
        """
        STASH.append(ctx.secrets.get("token"))
        return STASH
    """,
        "STASH = []\n",
    )
    assert (await run(pool, egress, source, secrets={"token": "tenant-a"})).value == ["tenant-a"]
    assert (await run(pool, egress, source, secrets={"token": "tenant-b"})).value == ["tenant-b"]
    assert (await run(pool, egress, source)).value == [None]


async def test_other_calls_secrets_and_undeclared_keys(pool: SandboxPool, egress: Egress) -> None:
    source = connector(
        "return [ctx.secrets.get('apiKey'), ctx.secrets.get('undeclared'), ctx.secrets.get('')]"
    )
    assert (await run(pool, egress, source, secrets={"apiKey": "s3cret"})).value == [
        "s3cret",
        None,
        None,
    ]
    assert (await run(pool, egress, source)).value == [None, None, None]


async def test_ctx_graph_walk(pool: SandboxPool, egress: Egress, server: LocalServer) -> None:
    source = connector("""
        r = ctx.http.get(ctx.params["base"] + "/json")
        blocked = 0
        attempts = 0
        for target in range(14):
            attempts += 1
            try:
                if target == 0: ctx.pool
                elif target == 1: ctx.channel
                elif target == 2: ctx.transport
                elif target == 3: ctx.http.client
                elif target == 4: ctx.http.session
                elif target == 5: ctx.http.request
                elif target == 6: ctx.secrets.values
                elif target == 7: ctx.secrets.items
                elif target == 8: r.request
                elif target == 9: r.connection
                elif target == 10: r.raw
                elif target == 11: ctx.log.im_self
                elif target == 12: ctx.http.get.im_func
                else: ctx.secrets.get.func
            except AttributeError:
                blocked += 1
        return [blocked, attempts, repr(ctx), repr(ctx.http), repr(ctx.secrets)]
    """)
    value = await result_then_benign(pool, egress, source, params={"base": server.url})
    assert value == [14, 14, "<ctx operation='attack'>", "<ctx.http>", "<ctx.secrets>"]


async def test_ctx_objects_are_read_only(pool: SandboxPool, egress: Egress) -> None:
    source = connector("""
        caught = []
        for attack in range(3):
            try:
                if attack == 0:
                    ctx.secrets = {"apiKey": "mine"}
                elif attack == 1:
                    ctx.http.get = None
                else:
                    ctx.operation = "other"
            except Exception as e:
                kind = 'TypeError' if isinstance(e, TypeError) else 'other'
                caught.append('AttributeError' if isinstance(e, AttributeError) else kind)
        return caught
    """)
    assert await result_then_benign(pool, egress, source) == ["TypeError"] * 3


@pytest.mark.parametrize(
    ("attack", "match"),
    [
        ("ctx.http.get(S('http://127.0.0.1/'))", r"TypeError: url must be a str"),
        (
            "ctx.http.get('http://127.0.0.1/', headers=D({'a': 'b'}))",
            r"TypeError: headers must be a dict",
        ),
        (
            "ctx.http.get('http://127.0.0.1/', headers={'a': S('b')})",
            r"TypeError: header names and values must be str",
        ),
        (
            "ctx.http.post('http://127.0.0.1/', json=D({'a': 1}))",
            r"json is not JSON-serialisable \(found D\)",
        ),
        (
            "ctx.http.get('http://127.0.0.1/', params={L('a'): 'b'})",
            r"TypeError: query parameter names must be str",
        ),
        ("return ctx.secrets.get(K('apiKey'))", r"TypeError: ctx.secrets.get\(\) takes a str key"),
    ],
    ids=[
        "str_subclass_url",
        "dict_subclass_headers",
        "str_subclass_header_value",
        "dict_subclass_json",
        "str_subclass_param_name",
        "lying_secret_key",
    ],
)
async def test_type_confusion_at_the_boundary(
    pool: SandboxPool, egress: Egress, attack: str, match: str
) -> None:
    prelude = """
        class S(str):
            def __eq__(self, other):
                return True
        class K(str):
            def __eq__(self, other):
                return True
        class L(str):
            def lower(self):
                return "host"
        class D(dict):
            def items(self):
                return [("Host", "evil.example")]
    """
    await contained(pool, egress, connector(attack, prelude), "connector_error", match)


@pytest.mark.parametrize(
    ("attack", "match"),
    [
        ("return {1, 2}", r"result is not JSON-serialisable \(found set\)"),
        ("return {'x': float('nan')}", r"result\['x'\] is not a finite number"),
        ("return D({'a': 1})", r"result is not JSON-serialisable \(found D\)"),
        ("return {1: 'int key'}", r"result has a key of type int"),
        ("x = []\nx.append(x)\nreturn x", r"nested more than 100 levels"),
        ("return ctx", r"result is not JSON-serialisable \(found Context\)"),
    ],
    ids=["set", "nan", "dict_subclass", "int_key", "cycle", "ctx_object"],
)
async def test_result_must_be_plain_json(pool: SandboxPool, egress: Egress, attack: str, match: str) -> None:
    prelude = "class D(dict):\n    def items(self):\n        return []\n"
    await contained(pool, egress, connector(attack, prelude), "connector_error", match)


async def test_print_to_a_file_object(pool: SandboxPool, egress: Egress) -> None:
    await contained(
        pool,
        egress,
        connector("print('x', file=ctx)"),
        "connector_error",
        r"print\(file=\.\.\.\) is not available",
    )


async def test_builtins_missing_at_run_time(pool: SandboxPool, egress: Egress) -> None:
    # Binding the names elsewhere passes the compile-time check; at run time the
    # builtins are still not there.
    source = connector(
        """
        found = []
        for name in range(3):
            try:
                if name == 0:
                    found.append(open("/etc/passwd"))
                elif name == 1:
                    found.append(getattr(ctx, "_log"))
                else:
                    found.append(type(ctx))
            except NameError as e:
                found.append(str(e))
        return found
    """,
        "def shadow(open, getattr, type):\n    return 1\n",
    )
    assert await result_then_benign(pool, egress, source) == [
        "name 'open' is not defined",
        "name 'getattr' is not defined",
        "name 'type' is not defined",
    ]


# --- contained at run time: exhaustion ------------------------------------------------------


async def test_endless_loop_hits_the_cpu_limit(pool: SandboxPool, egress: Egress) -> None:
    await contained(
        pool,
        egress,
        connector("while True:\n    pass"),
        "limit_exceeded",
        r"CPU time limit of 400 ms",
        limits=TIGHT,
    )


async def test_endless_loop_with_bare_except(pool: SandboxPool, egress: Egress) -> None:
    source = connector("while True:\n    try:\n        x = 1\n    except:\n        pass")
    await contained(pool, egress, source, "limit_exceeded", r"CPU time limit", limits=TIGHT)


async def test_huge_power(pool: SandboxPool, egress: Egress) -> None:
    await contained(
        pool,
        egress,
        connector("return 10 ** 10 ** 8"),
        "limit_exceeded",
        r"CPU time limit",
        limits=TIGHT,
    )


async def test_wall_time(pool: SandboxPool, server: LocalServer) -> None:
    import asyncio

    from bollard.sandbox.protocol import HttpRequest, HttpResponse

    async def stalls(request: HttpRequest) -> HttpResponse:
        await asyncio.sleep(3600)
        raise AssertionError

    source = connector("return ctx.http.get('http://127.0.0.1/slow').status")
    await contained(
        pool,
        stalls,
        source,
        "timeout",
        r"wall time limit of 500 ms",
        limits=Limits(wall_time_ms=500),
    )


async def test_memory_bomb(pool: SandboxPool, egress: Egress) -> None:
    await contained(
        pool,
        egress,
        connector("x = 'a' * (1 << 34)\nreturn len(x)"),
        "limit_exceeded",
        r"memory limit of 64 MiB",
        limits=TIGHT,
    )


async def test_growing_memory(pool: SandboxPool, egress: Egress) -> None:
    source = connector("chunks = []\nwhile True:\n    chunks.append('x' * 1000000)")
    await contained(pool, egress, source, "limit_exceeded", r"memory limit", limits=TIGHT)


async def test_huge_string(pool: SandboxPool, egress: Egress) -> None:
    await contained(
        pool,
        egress,
        connector("return 'A' * 10 ** 11"),
        "limit_exceeded",
        r"memory limit",
        limits=TIGHT,
    )


async def test_deep_recursion(pool: SandboxPool, egress: Egress) -> None:
    source = connector("return f(0)", "def f(n):\n    return f(n + 1)\n")
    await contained(pool, egress, source, "connector_error", r"RecursionError: maximum recursion depth")


async def test_failure_while_receiving_an_answer_does_not_desynchronise_the_pipe(
    pool: SandboxPool, egress: Egress, server: LocalServer
) -> None:
    # Fill memory to just below the limit, then fetch a 6 MB body: the MemoryError
    # strikes while the worker reads the answer, and the connector swallows it. The
    # rest of the answer is still in the pipe, so that worker must not be reused.
    source = connector(
        """
        filler = []
        try:
            while True:
                filler.append(" " * 1000000)
        except Exception:
            pass
        filler = filler[:-3]
        try:
            ctx.http.get(ctx.params["base"] + "/bytes", params={"n": 6000000})
            return "received"
        except Exception:
            return "caught"
        """
    )
    for _ in range(2):
        r = await run(pool, egress, source, params={"base": server.url}, limits=TIGHT)
        assert r.value == "caught"
        assert (await run(pool, egress, source, operation="ping", limits=TIGHT)).value == {"pong": True}


async def test_huge_result(pool: SandboxPool, egress: Egress) -> None:
    await contained(
        pool,
        egress,
        connector("return 'x' * (6 * 1024 * 1024)"),
        "limit_exceeded",
        r"result is larger than the limit of 5242880 bytes",
    )


async def test_request_cap(pool: SandboxPool, egress: Egress, server: LocalServer) -> None:
    source = connector("""
        done = 0
        for i in range(1000):
            try:
                ctx.http.get(ctx.params["base"] + "/json")
                done += 1
            except Exception:
                pass
        return done
    """)
    before = server.hits
    await contained(
        pool,
        egress,
        source,
        "limit_exceeded",
        r"more than 50 HTTP requests",
        params={"base": server.url},
    )
    assert server.hits - before == 50  # the 51st never left the host


async def test_range_is_bounded(pool: SandboxPool, egress: Egress) -> None:
    await contained(
        pool,
        egress,
        connector("return list(range(10 ** 12))"),
        "connector_error",
        r"range\(\) is limited to 1000000 elements",
    )


async def test_log_flood(pool: SandboxPool, egress: Egress) -> None:
    source = connector("for i in range(200000):\n    ctx.log('x' * 100)\nreturn 'ok'")
    r = await run(pool, egress, source)
    assert r.value == "ok" and r.logs[-1].startswith("[log truncated")
    assert sum(len(line) for line in r.logs) < 70 * 1024
