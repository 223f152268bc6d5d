"""The compile policy, guards, builtins, module facades, protocol checks and limits,
in process (the worker-side behaviour is covered with real workers in
test_sandbox_pool.py and test_sandbox_attacks.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from bollard.sandbox import guards
from bollard.sandbox.ctx import ConnectorOutput, Context, Printer
from bollard.sandbox.errors import ConnectorCompileError
from bollard.sandbox.frames import (
    HEADER,
    ProtocolError,
    decode_payload,
    encode_frame,
    frame_head,
    plain_json,
    read_frame_header,
)
from bollard.sandbox.imports import FACADES, MODULE_MEMBERS, ModuleFacade, guarded_import
from bollard.sandbox.limits import DEFAULT_LIMITS, MIB, Limits, resolve_limits
from bollard.sandbox.policy import MAX_SOURCE_BYTES, compile_connector, make_globals, source_hash
from bollard.sandbox.protocol import (
    MAX_REQUEST_BODY_BYTES,
    HttpResponse,
    http_response_message,
    parse_error,
    parse_http_request,
)
from tests.support.paths import SHIPPED


def errors_of(source: str) -> list[str]:
    with pytest.raises(ConnectorCompileError) as info:
        compile_connector(source)
    return info.value.errors


def execute_in_process(source: str) -> tuple[Any, list[str]]:
    """Compile ``source`` and call its ``execute(None)`` with fresh sandbox globals."""
    compiled = compile_connector(source)
    log = ConnectorOutput(10_000)
    namespace = make_globals(lambda _getattr=None: Printer(log))
    exec(compiled.code, namespace)
    return namespace["execute"](None), log.finish()


# --- compile_connector ---------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(SHIPPED.glob("*/connector.py")), ids=lambda p: p.parent.name)
def test_shipped_connectors_compile(path: Path) -> None:
    compiled = compile_connector(path.read_text())
    assert compiled.filename == "connector.py"
    assert compiled.source_hash == source_hash(path.read_text())


def test_entrypoints_detected() -> None:
    assert compile_connector("def execute(ctx):\n    return 1\n").test_entrypoint is None
    both = "def test_connection(ctx):\n    pass\ndef execute(ctx):\n    pass\n"
    assert compile_connector(both).test_entrypoint == "test_connection"
    alias = "def testConnection(ctx):\n    pass\ndef execute(ctx):\n    pass\n"
    assert compile_connector(alias).test_entrypoint == "testConnection"


def test_missing_execute() -> None:
    assert errors_of("def run(ctx):\n    return 1\n") == [
        "Line 1: connector.py must define execute(ctx) at module level."
    ]
    # Nested definitions do not count.
    assert errors_of("def outer():\n    def execute(ctx):\n        pass\n") == [
        "Line 1: connector.py must define execute(ctx) at module level."
    ]


def test_errors_carry_line_numbers_sorted() -> None:
    source = "import json\nimport socket\ndef execute(ctx):\n    x = eval('1')\n    return ctx.__dict__\n"
    errors = errors_of(source)
    assert [e.split(":")[0] for e in errors] == ["Line 2", "Line 4", "Line 5"]
    assert errors[1] == "Line 4: Eval calls are not allowed."  # reported once, not twice


def test_syntax_error() -> None:
    (error,) = errors_of("def execute(ctx)\n    return 1\n")
    assert error.startswith("Line 1: SyntaxError:")


def test_source_limits() -> None:
    assert errors_of("#" * (MAX_SOURCE_BYTES + 1)) == [
        f"Line 0: the connector is larger than {MAX_SOURCE_BYTES} bytes."
    ]
    assert errors_of(b"def execute(ctx): pass") == ["Line 0: the connector source must be text."]  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "statement",
    [
        "import json",
        "import urllib.parse",
        "import urllib",
        "from urllib.parse import quote, urlencode",
        "import datetime as dt",
        "from collections import defaultdict as dd",
        "from time import strftime",
    ],
)
def test_allowed_imports_compile(statement: str) -> None:
    compile_connector(statement + "\ndef execute(ctx):\n    return 1\n")


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("import os.path", "Line 1: import of 'os.path' is not allowed"),
        ("import urllib.request", "Line 1: import of 'urllib.request' is not allowed"),
        ("from json import dump", "Line 1: cannot import name 'dump' from 'json'"),
        ("from re import functools", "Line 1: cannot import name 'functools' from 're'"),
        ("from time import sleep, time", "Line 1: cannot import name 'sleep' from 'time'"),
        ("from .json import x", "Line 1: relative imports are not allowed."),
        ("import _strptime", "Line 1: import of '_strptime' is not allowed"),
    ],
)
def test_refused_imports(statement: str, message: str) -> None:
    assert any(e.startswith(message) for e in errors_of(statement + "\ndef execute(ctx):\n    return 1\n"))


def test_unavailable_builtins_unless_bound() -> None:
    assert errors_of("def execute(ctx):\n    return type(ctx)\n") == [
        "Line 2: 'type' is not available in connectors."
    ]
    # A name the connector binds itself is its own.
    compile_connector("def execute(ctx, type='x'):\n    return type\n")


# --- module facades and the import hook -------------------------------------------------------


def test_facades_expose_only_listed_members() -> None:
    for name, members in MODULE_MEMBERS.items():
        facade = FACADES[name]
        for member in members:
            getattr(facade, member)
    assert FACADES["json"].dumps is json.dumps
    with pytest.raises(AttributeError, match="module 'json' has no attribute 'decoder'"):
        FACADES["json"].decoder  # noqa: B018
    with pytest.raises(AttributeError):
        FACADES["time"].sleep  # noqa: B018
    with pytest.raises(AttributeError):
        FACADES["json"].__name__  # noqa: B018  (no sys.modules fallback for `from json import x`)
    assert FACADES["urllib"].parse is FACADES["urllib.parse"]


def test_facades_are_read_only_and_constants_frozen() -> None:
    with pytest.raises(AttributeError):
        FACADES["json"].dumps = None
    with pytest.raises(AttributeError):
        del FACADES["math"].pi
    assert FACADES["json"].dumps is json.dumps and FACADES["math"].pi == math.pi
    assert type(FACADES["hashlib"].algorithms_guaranteed) is frozenset


def test_guarded_import() -> None:
    assert guarded_import("json") is FACADES["json"]
    assert guarded_import("urllib.parse") is FACADES["urllib"]  # `import a.b` binds `a`
    assert guarded_import("urllib.parse", fromlist=("quote",)) is FACADES["urllib.parse"]
    with pytest.raises(ImportError, match="import of 'os' is not allowed"):
        guarded_import("os")
    with pytest.raises(ImportError, match="cannot import name 'sleep' from 'time'"):
        guarded_import("time", fromlist=("sleep",))
    with pytest.raises(ImportError, match="relative imports"):
        guarded_import("json", level=1)
    with pytest.raises(ImportError):
        guarded_import(type("S", (str,), {})("json"))  # type: ignore[arg-type]


# --- guards ------------------------------------------------------------------------------------


def test_getattr_guard() -> None:
    g = guards.guarded_getattr
    assert g("abc", "upper")() == "ABC"
    with pytest.raises(AttributeError):
        g("abc", "missing")  # raises, unlike safer_getattr's default None
    for name in (
        "__class__",
        "_x",
        "gi_frame",
        "f_back",
        "tb_frame",
        "cr_frame",
        "ag_frame",
        "co_code",
    ):
        with pytest.raises(AttributeError):
            g((i for i in []), name)
    for target in ("{0}", str, type("S", (str,), {})("{0}")):
        for name in ("format", "format_map"):
            with pytest.raises(NotImplementedError, match=r"str\.format\(\) is not available"):
                g(target, name)
    with pytest.raises(AttributeError, match="type.mro"):
        g(int, "mro")
    with pytest.raises(AttributeError, match="AttributeError.obj"):
        g(AttributeError("x", obj=FACADES["json"]), "obj")
    with pytest.raises(TypeError):
        g("abc", type("S", (str,), {})("upper"))  # non-str names


def test_getattr_guard_on_ctx_objects() -> None:
    ctx = Context.__new__(Context)
    ctx.operation = "op"
    assert guards.guarded_getattr(ctx, "operation") == "op"
    for name in ("log", "base64_encode", "base64_decode"):
        assert callable(guards.guarded_getattr(ctx, name))
    with pytest.raises(AttributeError, match="not available on this object"):
        guards.guarded_getattr(ctx, "anything_else")


def test_write_guard() -> None:
    w = guards.guarded_write
    d: dict[str, Any] = {}
    w(d)["a"] = 1
    assert d == {"a": 1}
    for host_object in (
        FACADES["json"],
        json.dumps,
        Exception,
        Context.__new__(Context),
        "text",
        (1,),
    ):
        with pytest.raises(TypeError):
            w(host_object).attr = 1
    with pytest.raises(TypeError):
        w((1, 2))[0] = 5
    cls = guards.connector_metaclass("Mine", (), {})
    w(cls).x = 1
    instance = cls()
    w(instance).y = 2
    assert (cls.x, instance.y) == (1, 2)
    assert guards.defined_by_connector(cls) and not guards.defined_by_connector(dict)


def test_inplace_and_apply() -> None:
    items = [1]
    assert guards.guarded_inplacevar("+=", items, [2]) is items and items == [1, 2]
    assert guards.guarded_inplacevar("**=", 3, 2) == 9
    assert guards.guarded_apply(max, *[[1, 5]], **{"default": 0}) == 5


def test_builtins() -> None:
    b = guards.make_builtins()
    for present in (
        "list",
        "dict",
        "tuple",
        "set",
        "sorted",
        "min",
        "max",
        "sum",
        "any",
        "all",
        "enumerate",
        "zip",
        "map",
        "filter",
        "reversed",
        "isinstance",
        "len",
        "range",
        "str",
        "int",
        "float",
        "bool",
        "Exception",
        "ValueError",
        "KeyError",
        "__import__",
        "__build_class__",
    ):
        assert present in b, present
    for absent in (
        "open",
        "eval",
        "exec",
        "compile",
        "getattr",
        "setattr",
        "type",
        "vars",
        "globals",
        "BaseException",
        "SystemExit",
        "KeyboardInterrupt",
        "GeneratorExit",
        "MemoryError",
        "ExceptionGroup",
        "input",
        "breakpoint",
        "object",
    ):
        assert absent not in b, absent
    b["list"] = None
    assert guards.make_builtins()["list"] is list  # a fresh copy each time
    assert b is not guards.make_builtins()


def test_make_globals_is_fresh_and_uses_a_builtins_dict() -> None:
    first, second = make_globals(Printer), make_globals(Printer)
    assert first is not second and first["__builtins__"] is not second["__builtins__"]
    assert type(first["__builtins__"]) is dict and "open" not in first["__builtins__"]


def test_guarded_helpers_behave_like_the_builtins() -> None:
    value, logs = execute_in_process("""
import collections

class Point:
    def __init__(self, x):
        self.x = x

def execute(ctx):
    p = Point(1)
    p.y = 2
    Point.z = 3
    d = collections.defaultdict(list)
    d["k"].append(1)
    d["j"] = [2]
    total = 0
    for a, b in zip([1, 2], [3, 4]):
        total += a * b
    print("total", total)
    return {
        "sorted": sorted([3, 1, 2], reverse=True), "min": min([4, 2]), "max": max(1, 9),
        "sum": sum(x for x in [1, 2]), "any": any([0, 1]), "all": all([]),
        "enum": list(enumerate("ab", 1)), "map": list(map(str, [1])), "filter": list(filter(None, [0, 1])),
        "rev": list(reversed([1, 2, 3])), "range": list(range(2, 8, 3)), "iter": next(iter([7])),
        "point": [p.x, p.y, p.z], "dd": dict(d), "total": total, "isinstance": isinstance([], list),
        "fstring": f"{p.x:03d}|{'a'!r}", "percent": "%s-%d" % ("a", 1), "tuple": list(tuple("ab")),
    }
""")
    assert value == {
        "sorted": [3, 2, 1],
        "min": 2,
        "max": 9,
        "sum": 3,
        "any": True,
        "all": True,
        "enum": [(1, "a"), (2, "b")],
        "map": ["1"],
        "filter": [1],
        "rev": [3, 2, 1],
        "range": [2, 5],
        "iter": 7,
        "point": [1, 2, 3],
        "dd": {"k": [1], "j": [2]},
        "total": 11,
        "isinstance": True,
        "fstring": "001|'a'",
        "percent": "a-1",
        "tuple": ["a", "b"],
    }
    assert logs == ["total 11"]


def test_range_bound() -> None:
    assert len(guards.make_builtins()["range"](guards.MAX_RANGE)) == guards.MAX_RANGE
    with pytest.raises(ValueError, match="range"):
        guards.make_builtins()["range"](guards.MAX_RANGE + 1)


# --- connector output --------------------------------------------------------------------------


def test_connector_output_lines_and_cap() -> None:
    log = ConnectorOutput(20)
    log.write("ab\ncd")
    log.add("line")
    log.write("x" * 30 + "\n")
    log.add("dropped")
    assert log.finish() == ["ab", "cd", "line", "[log truncated at 20 bytes]"]


# --- protocol ----------------------------------------------------------------------------------


def test_plain_json_copies_exact_types() -> None:
    source = {"a": (1, 2.5, None, True), "b": [{"c": "d"}]}
    out = plain_json(source)
    assert out == {"a": [1, 2.5, None, True], "b": [{"c": "d"}]}
    out["b"][0]["c"] = "changed"
    assert source["b"][0]["c"] == "d"  # type: ignore[index]


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (type("D", (dict,), {"items": lambda self: []})({"a": 1}), TypeError, r"found D"),
        (type("S", (str,), {})("x"), TypeError, r"found S"),
        ({"a": float("nan")}, ValueError, r"value\['a'\] is not a finite number"),
        ({1: "x"}, TypeError, "key of type int"),
        (b"bytes", TypeError, "found bytes"),
        ({"x": {1, 2}}, TypeError, r"value\['x'\] is not JSON-serialisable \(found set\)"),
    ],
)
def test_plain_json_refuses(value: Any, error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        plain_json(value)


def test_plain_json_depth() -> None:
    deep: list[Any] = []
    for _ in range(150):
        deep = [deep]
    with pytest.raises(ValueError, match="nested more than 100 levels"):
        plain_json(deep)


def test_frames_round_trip_and_cap() -> None:
    frame = encode_frame({"type": "x", "text": "é"}, b"\x00\xff")
    size, body_size = read_frame_header(frame[: HEADER.size], 1000)
    assert decode_payload(frame[HEADER.size : HEADER.size + size]) == {"type": "x", "text": "é"}
    assert frame[HEADER.size + size :] == b"\x00\xff" and body_size == 2
    assert size + body_size == len(frame) - HEADER.size
    assert frame_head({"type": "x", "text": "é"}, 2) + b"\x00\xff" == frame
    with pytest.raises(ProtocolError, match="exceeds the cap"):
        read_frame_header(frame[: HEADER.size], size + body_size - 1)


@pytest.mark.parametrize(
    "payload",
    [
        b'{"type": "r", "v": NaN}',
        b'{"type": "r", "v": Infinity}',
        b'{"type": "r", "v": 1e999}',
        b"[1, 2]",
        b'{"kind": "x"}',
        b'{"type": 1}',
        b"\xff\xfe",
        b"{" * 100000,
        b'{"type": "r", "v": ' + b"9" * 5000 + b"}",
    ],
)
def test_decode_payload_refuses(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_payload(payload)


def good_http(**changes: Any) -> dict[str, Any]:
    message = {
        "type": "http",
        "method": "GET",
        "url": "https://a.example/",
        "headers": {"a": "b"},
        "params": {"q": "1", "t": ["x", "y"]},
        "body": None,
        "binary_body": False,
        "response_type": None,
    }
    message.update(changes)
    return message


def test_parse_http_request() -> None:
    request = parse_http_request(good_http(method="POST", json={"k": [1]}))
    assert (request.method, request.url, request.headers, request.json) == (
        "POST",
        "https://a.example/",
        {"a": "b"},
        {"k": [1]},
    )
    request = parse_http_request(good_http(binary_body=True), b"\x00\x01")
    assert request.binary_body == b"\x00\x01" and request.body is None
    assert parse_http_request(good_http(binary_body=True)).binary_body == b""
    assert parse_http_request(good_http()).binary_body is None


@pytest.mark.parametrize(
    "changes",
    [
        {"method": "CONNECT"},
        {"url": 1},
        {"url": "x" * 9000},
        {"headers": {"a": 1}},
        {"headers": {str(i): "v" for i in range(101)}},
        {"params": {"a": 1}},
        {"params": {"a": [1]}},
        {"body": "x", "binary_body": True},
        {"json": 1, "binary_body": True},
        {"binary_body": "AA=="},
        {"binary_body": None},
        {"binary_body": 1},
        {"response_type": "json"},
        {"headers": []},
    ],
)
def test_parse_http_request_refuses(changes: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError):
        parse_http_request(good_http(**changes))


def test_parse_http_request_refuses_unannounced_or_oversized_bodies() -> None:
    with pytest.raises(ProtocolError):
        parse_http_request(good_http(), b"x")
    with pytest.raises(ProtocolError):
        parse_http_request(good_http(body="text"), b"x")
    with pytest.raises(ProtocolError):
        parse_http_request(good_http(binary_body=True), bytes(MAX_REQUEST_BODY_BYTES + 1))


def test_parse_error_refuses_unknown_kinds_and_bad_fields() -> None:
    ok = {"type": "error", "kind": "connector", "message": "m", "line": 3, "code": None, "logs": []}
    assert parse_error(ok, 100).line == 3
    for bad in ({"kind": "root"}, {"line": "3"}, {"message": 5}, {"logs": ["x" * 200]}):
        with pytest.raises(ProtocolError):
            parse_error({**ok, **bad}, 100)


def test_http_response_message_lowercases_headers() -> None:
    message = http_response_message(HttpResponse(201, "Created", {"X-A": "1"}, b"\x00", "https://a/"))
    assert message == {
        "type": "http_response",
        "status": 201,
        "status_text": "Created",
        "headers": {"x-a": "1"},
        "url": "https://a/",
    }


# --- limits -------------------------------------------------------------------------------------


def test_default_limits() -> None:
    assert (
        Limits(
            wall_time_ms=30_000,
            cpu_time_ms=10_000,
            memory_bytes=256 * MIB,
            max_http_requests=50,
            max_response_bytes=10 * MIB,
            max_result_bytes=5 * MIB,
            max_log_bytes=64 * 1024,
        )
        == DEFAULT_LIMITS
    )


def test_resolve_limits_override_then_ceiling() -> None:
    ceiling = Limits(wall_time_ms=60_000, memory_bytes=512 * MIB, max_http_requests=100)
    limits = resolve_limits(
        DEFAULT_LIMITS,
        {
            "timeoutMs": 90_000,
            "memoryMb": 128,
            "maxHttpRequests": 10,
            "cpuTimeMs": 2000,
            "maxResponseBytes": 1000,
            "maxResultBytes": 2000,
            "name": "ignored",
        },
        ceiling,
    )
    assert limits == Limits(
        wall_time_ms=60_000,
        cpu_time_ms=2000,
        memory_bytes=128 * MIB,
        max_http_requests=10,
        max_response_bytes=1000,
        max_result_bytes=2000,
    )
    assert resolve_limits(DEFAULT_LIMITS, None, None) == DEFAULT_LIMITS


@pytest.mark.parametrize("bad", [0, -1, True, "1000", 1.5, None])
def test_resolve_limits_refuses_bad_values(bad: Any) -> None:
    with pytest.raises(ValueError, match="timeoutMs"):
        resolve_limits(DEFAULT_LIMITS, {"timeoutMs": bad})


def test_limits_validate_fields() -> None:
    with pytest.raises(ValueError, match="cpu_time_ms"):
        Limits(cpu_time_ms=0)


def test_module_facade_type_is_not_exposed_by_import() -> None:
    facade = guarded_import("math")
    assert isinstance(facade, ModuleFacade)
    with pytest.raises(AttributeError):
        guards.guarded_getattr(facade, "_members")
