"""Hardening of the sandbox against tenants sharing a worker, facade gadgets and
teardown outside the limits (issue 9 items 5, 6 and 7; DESIGN §4.4, §4.5).

Real worker processes; the facade walk also runs in process, where the objects it
reaches can be checked by identity.
"""

from __future__ import annotations

import re
import types
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from bollard.sandbox import guards
from bollard.sandbox.ctx import ConnectorOutput, Printer
from bollard.sandbox.errors import SandboxError
from bollard.sandbox.imports import _REAL_MODULES, FACADES, MODULE_MEMBERS, facade_members
from bollard.sandbox.job import Job, RunResult
from bollard.sandbox.limits import Limits
from bollard.sandbox.policy import compile_connector, make_globals, source_hash
from bollard.sandbox.pool import SandboxPool
from tests.support.standin import Egress

pytestmark = pytest.mark.asyncio(loop_scope="module")

LIMITS = Limits(wall_time_ms=60_000, cpu_time_ms=30_000)
TIGHT = Limits(wall_time_ms=20_000, cpu_time_ms=500)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pool() -> AsyncIterator[SandboxPool]:
    p = SandboxPool(workers_per_integration=1)
    yield p
    await p.close()


async def run(
    pool: SandboxPool,
    egress: Egress,
    source: str,
    *,
    key: str | None = None,
    tenant: str = "",
    operation: str = "attack",
    limits: Limits = LIMITS,
) -> RunResult:
    return await pool.run(
        Job(
            key=key or "harden:" + source_hash(source)[:12],
            **({"tenant": tenant} if tenant else {}),
            source=source,
            entrypoint="execute",
            operation=operation,
            params={},
            secrets={},
            http_handler=egress,
            limits=limits,
        )
    )


# --- item 5: one tenant per worker ------------------------------------------------------

TENANT = "def execute(ctx):\n    return ctx.operation\n"


async def test_tenants_of_one_version_get_their_own_workers(pool: SandboxPool, egress: Egress) -> None:
    assert (await run(pool, egress, TENANT, key="tenants:v1", tenant="alice")).value == "attack"
    assert (await run(pool, egress, TENANT, key="tenants:v1", tenant="bob")).value == "attack"
    stats = pool.stats()
    alice, bob = stats["tenants:v1/alice"]["idle_pids"], stats["tenants:v1/bob"]["idle_pids"]
    assert len(alice) == 1 and len(bob) == 1 and alice != bob
    # Each tenant's next call reuses its own worker, never the other's.
    await run(pool, egress, TENANT, key="tenants:v1", tenant="bob")
    assert pool.stats()["tenants:v1/bob"]["idle_pids"] == bob
    assert pool.stats()["tenants:v1/alice"]["idle_pids"] == alice


async def test_retiring_a_version_retires_every_tenant(pool: SandboxPool, egress: Egress) -> None:
    for tenant in ("alice", "bob"):
        await run(pool, egress, TENANT, key="retire:v1", tenant=tenant)
    assert {"retire:v1/alice", "retire:v1/bob"} <= set(pool.stats())
    pool.retire("retire:v1")
    assert not [k for k in pool.stats() if k.startswith("retire:")]
    # A new version of the integration retires the old version's tenants too.
    for tenant in ("alice", "bob"):
        await run(pool, egress, TENANT, key="retire:v2", tenant=tenant)
    await run(pool, egress, TENANT + "# v3\n", key="retire:v3", tenant="alice")
    assert [k for k in pool.stats() if k.startswith("retire:")] == ["retire:v3/alice"]


@pytest.mark.parametrize("attack", ["urlsplit.cache_info()", "urlsplit.cache_clear()"])
async def test_lru_cache_of_urlsplit_is_unreachable(pool: SandboxPool, egress: Egress, attack: str) -> None:
    source = (
        "from urllib.parse import urlsplit\nimport urllib.parse\n"
        "def execute(ctx):\n"
        "    if ctx.operation == 'module':\n"
        f"        return str(urllib.parse.{attack})\n"
        f"    return str({attack})\n"
    )
    for operation in ("attack", "module"):
        with pytest.raises(SandboxError) as info:
            await run(pool, egress, source, operation=operation)
        assert info.value.code == "connector_error"
        assert re.search(r"has no attribute 'cache_(info|clear)'", info.value.message), info.value.message
    ok = "import urllib.parse\ndef execute(ctx):\n    return urllib.parse.urlsplit('https://a.example/p').path\n"
    assert (await run(pool, egress, ok)).value == "/p"


@pytest.mark.filterwarnings("ignore:The test <Function")
def test_no_facade_member_is_a_functools_wrapper() -> None:
    for name, facade in FACADES.items():
        for member in facade_members(facade):
            value = getattr(facade, member)
            if callable(value) and not isinstance(value, type):
                public = [a for a in dir(value) if not a.startswith("_")]
                assert public == [], f"{name}.{member} exposes {public}"


# --- item 6: facade gadgets ----------------------------------------------------------------


def _walk_targets() -> list[str]:
    """Every member of every facade, every public attribute of every facade class (its
    whole MRO), and the accessor functions of its properties, as source expressions."""
    targets: list[str] = []
    for module, members in MODULE_MEMBERS.items():
        for member in members:
            expr = f"{module}.{member}"
            targets.append(expr)
            real = getattr(_REAL_MODULES[module], member)
            if not isinstance(real, type):
                continue
            seen: set[str] = set()
            for klass in real.__mro__:
                for attr, value in vars(klass).items():
                    if attr.startswith("_") or attr in seen:
                        continue
                    seen.add(attr)
                    targets.append(f"{expr}.{attr}")
                    if isinstance(value, property):
                        targets.extend(f"{expr}.{attr}.{part}" for part in ("fget", "fset", "fdel"))
    return targets


WALK = """
import base64, collections, datetime, decimal, hashlib, hmac, itertools, json, math, re, time, uuid
import urllib.parse

class Mine:
    def copy(self):
        return 'Made'

class Maps:
    maps = [(), {'__doc__': 'made by a gadget'}]

class Copyable:
    maps = [Mine(), (), {}]

def foreigns():
    return [
        1, 'x', b'x', [1], {'a': 1}, (1,), None, 1.5, True, 2 ** 70,
        int, str, list, dict, tuple, set, Exception, ValueError('e'),
        Mine, Mine(), Maps, Maps(), Copyable, Copyable(),
        collections.Counter(a=1), collections.ChainMap({}), collections.OrderedDict(a=1),
        collections.deque([1]), collections.defaultdict(list), collections.Counter,
        collections.ChainMap, datetime.date(2020, 1, 1), datetime.timedelta(1),
        decimal.Decimal(1), uuid.UUID(int=1), urllib.parse.urlsplit('http://x/'),
        re.compile('x'), re.match('x', 'x'), hmac.new(b'k', b'm', 'sha256'),
        hashlib.sha256(), time.gmtime(0), json, collections, urllib.parse,
    ]

def reach(get):
    try:
        return [True, get()]
    except Exception as e:
        return [False, e]

TARGETS = [
%(targets)s
]

def show(value):
    return repr(value)[:300]

def execute(ctx):
    found = []
    args = foreigns()
    for label, get in TARGETS:
        ok, value = reach(get)
        found.append([label, 'get', value])
        if not ok or not callable(value):
            continue
        for i, arg in enumerate(args):
            for extra in ((), ('x',)):
                try:
                    result = value(arg, *extra)
                except Exception as e:
                    result = e
                found.append([label, str(i) + '/' + str(len(extra)), result])
    if ctx is not None and ctx.operation == 'repr':
        return [[label, how, show(result)] for label, how, result in found
                if not isinstance(result, Exception)]
    return found
"""


def walk_source() -> str:
    lines = [f"    ({t!r}, lambda: {t})," for t in _walk_targets()]
    return WALK % {"targets": "\n".join(lines)}


def _allowed_classes() -> set[type]:
    """The builtins' and facades' classes, and the exception classes of the allowed
    modules (``decimal`` puts its signal classes, e.g. ``ConversionSyntax``, in the
    ``args`` of the errors it raises)."""
    allowed = {v for v in guards.make_builtins().values() if isinstance(v, type)}
    for facade in FACADES.values():
        allowed |= {
            getattr(facade, m) for m in facade_members(facade) if isinstance(getattr(facade, m), type)
        }
    for module in _REAL_MODULES.values():
        allowed |= {v for v in vars(module).values() if isinstance(v, type) and issubclass(v, Exception)}
    return allowed - {type, object}


FORBIDDEN_TYPES = (types.FrameType, types.TracebackType, types.CodeType)


def _forbidden(value: Any, allowed: set[type], depth: int = 0) -> str | None:
    """Why ``value`` (or something inside it) must not reach connector code, or None."""
    if value is type or value is object:
        return f"the {value.__name__!r} builtin"
    if isinstance(value, FORBIDDEN_TYPES):
        return f"a {type(value).__name__} object"
    # namedtuple classes are made for the connector (their module is the connector's).
    made_for_connector = isinstance(value, type) and (
        guards.defined_by_connector(value)
        or (value.__bases__ == (tuple,) and value.__module__ == "connector")
    )
    if isinstance(value, type) and value not in allowed and not made_for_connector:
        return f"the host class {value!r}"
    if depth > 3:
        return None
    children: list[Any] = []
    if isinstance(value, list | tuple | set | frozenset):
        children = list(value)
    elif isinstance(value, dict):
        children = [*value.keys(), *value.values()]
    elif isinstance(value, BaseException):
        children = list(value.args)
    for child in children:
        reason = _forbidden(child, allowed, depth + 1)
        if reason:
            return reason
    return None


@pytest.mark.filterwarnings("ignore:The test <Function")
def test_facade_walk_in_process_reaches_no_type_object_frame_or_host_class() -> None:
    """Every facade, class, method and property accessor, called from connector code with
    foreign ``self`` values: nothing it hands back is ``type``, ``object``, a frame, a
    traceback, a code object or a host class (``collections.Counter.copy(int)`` ran
    ``self.__class__(self)`` and returned ``type``)."""
    compiled = compile_connector(walk_source())
    namespace = make_globals(lambda _getattr=None: Printer(ConnectorOutput(10_000)))
    exec(compiled.code, namespace)
    found = namespace["execute"](None)
    allowed = _allowed_classes()
    assert len(found) > 5000  # the walk really called things
    bad = [(label, how, reason) for label, how, value in found if (reason := _forbidden(value, allowed))]
    assert bad == []


CLASS_REPR = re.compile(r"<class '([^']+)'>")
FORBIDDEN_REPR = re.compile(r"<class 'type'>|<class 'object'>|<frame at|<traceback object|<code object")


async def test_facade_walk_in_a_worker(pool: SandboxPool, egress: Egress) -> None:
    """The same walk in a real worker, checked on the reprs of what it reached."""
    found = (await run(pool, egress, walk_source(), operation="repr")).value
    allowed = {repr(c) for c in _allowed_classes()}
    bad = []
    for label, how, shown in found:
        if FORBIDDEN_REPR.search(shown):
            bad.append((label, how, shown))
            continue
        for name in CLASS_REPR.findall(shown):
            if f"<class '{name}'>" not in allowed and not name.startswith("connector."):
                bad.append((label, how, shown))
    assert bad == []


@pytest.mark.parametrize(
    "attack",
    [
        "return str(collections.Counter.copy(int))",
        "return str(collections.ChainMap.new_child(Maps, 'Made'))",
        "return str(uuid.UUID.hex.fget(uuid.NAMESPACE_DNS))",
        "collections.ChainMap.register(Maps)\n    return str(isinstance(Maps(), collections.ChainMap))",
    ],
)
async def test_known_gadgets_are_refused(pool: SandboxPool, egress: Egress, attack: str) -> None:
    source = (
        f"import collections, uuid\nclass Maps:\n    maps = [(), {{}}]\ndef execute(ctx):\n    {attack}\n"
    )
    with pytest.raises(SandboxError) as info:
        await run(pool, egress, source)
    assert info.value.code == "connector_error"
    assert re.search(r"needs a|not available", info.value.message), info.value.message


async def test_methods_still_work_on_real_instances(pool: SandboxPool, egress: Egress) -> None:
    source = """
import collections, hmac, urllib.parse, uuid
class Tally(collections.Counter):
    pass
def execute(ctx):
    c = collections.Counter('aab')
    t = Tally('xyy')
    chain = collections.ChainMap({'a': 1}).new_child({'b': 2})
    mac = hmac.new(b'k', b'm', 'sha256')
    return {
        'copy': dict(collections.Counter.copy(c)),
        'sub': collections.Counter.most_common(t, 1),
        'own': dict(Tally.copy(t)),
        'chain': dict(chain.parents),
        'keys': sorted(collections.ChainMap.keys(chain)),
        'mac': hmac.HMAC.hexdigest(mac.copy()) == mac.hexdigest(),
        'url': urllib.parse.SplitResult.geturl(urllib.parse.urlsplit('https://a.example/p')),
        'hex': uuid.UUID(int=1).hex,
    }
"""
    assert (await run(pool, egress, source)).value == {
        "copy": {"a": 2, "b": 1},
        "sub": [["y", 2]],
        "own": {"x": 1, "y": 2},
        "chain": {"a": 1},
        "keys": ["a", "b"],
        "mac": True,
        "url": "https://a.example/p",
        "hex": "00000000000000000000000000000001",
    }


# --- item 7: teardown inside the limits --------------------------------------------------

SPINNING_FINALLY = """
def spin():
    try:
        yield 1
    finally:
        while True:
            pass

%(prelude)s

def execute(ctx):
    if ctx.operation == 'ping':
        return {'pong': True}
%(body)s
    return 'done'
"""

TEARDOWNS = {
    # Left in a module global: finalised when the namespace is cleared.
    "global": ("KEPT = []", "    g = spin()\n    next(g)\n    KEPT.append(g)"),
    # In a reference cycle: finalised only by the garbage collector.
    "cycle": ("", "    g = spin()\n    next(g)\n    box = [g]\n    box.append(box)"),
    # Reachable from a caught exception's traceback, in a cycle with it.
    "traceback": (
        "",
        "    g = spin()\n    next(g)\n    try:\n        raise ValueError(g)\n"
        "    except ValueError as e:\n        saved = [e]\n        saved.append(saved)",
    ),
}


@pytest.mark.parametrize("how", sorted(TEARDOWNS))
async def test_generator_finally_runs_inside_the_cpu_limit(
    pool: SandboxPool, egress: Egress, how: str
) -> None:
    prelude, body = TEARDOWNS[how]
    source = SPINNING_FINALLY % {"prelude": prelude, "body": body}
    with pytest.raises(SandboxError) as info:
        await run(pool, egress, source, limits=TIGHT)
    assert info.value.code == "limit_exceeded", info.value.message
    assert "CPU time limit of 500 ms" in info.value.message
    assert (await run(pool, egress, source, operation="ping", limits=TIGHT)).value == {"pong": True}
