"""The import allowlist of connector code (DESIGN §3) and its module facades.

Connectors may import only ``json``, ``re``, ``math``, ``datetime``, ``time`` (without
``sleep``), ``base64``, ``hashlib``, ``hmac``, ``urllib.parse``, ``decimal``,
``collections``, ``itertools`` and ``uuid``. An import never hands out the real
module: it returns a :class:`ModuleFacade`, a read-only object holding only the
members listed in :data:`MODULE_MEMBERS`. That keeps module internals (``re.functools``,
``json.decoder``...) out of reach and makes ``json.dumps = ...`` fail, so one
execution cannot poison the modules the next one uses (a known RestrictedPython
pitfall, see research/restrictedpython.md "identity _write_").

Members were chosen to be pure: no sleeping, no file, process, network or
environment access (``uuid.uuid1``/``getnode`` run external commands, ``time.tzset``
changes process state, ``decimal.getcontext``/``setcontext`` and the shared
``BasicContext`` objects are process-wide mutable state). Mutable module constants
are exposed as immutable copies (``hashlib.algorithms_*`` as ``frozenset``).

Callable members are plain functions (:func:`_plain_function`): a ``functools``
wrapper would hand out its own methods (``urllib.parse.urlsplit`` is an
``lru_cache`` whose ``cache_info()``/``cache_clear()`` read and reset a process-wide
cache, issue 9 item 5). ``collections.namedtuple`` classes get the module
``"connector"`` rather than the name of the host module that called it.

Remaining timing surface (DESIGN §4.5). Some process-wide state is still filled by
connector code and observable through timing: ``re``'s compiled-pattern cache, the
``lru_cache`` behind ``urlsplit``, ``_strptime``'s format cache, the codec and
``unicodedata`` lookups, interned strings, the allocator and CPU caches. None of it
is shared between tenants because a worker serves one (integration version,
credential) for its whole life (:class:`bollard.sandbox.pool.SandboxPool`, ``tenant``);
executions of the *same* tenant in one worker can still see each other's timing,
which leaks nothing that tenant does not already hold.
"""

from __future__ import annotations

import base64
import collections
import datetime
import decimal
import hashlib
import hmac
import itertools
import json
import math
import re
import sys
import time
import types
import urllib.parse
import uuid
from collections.abc import Mapping
from types import ModuleType
from typing import Any

# fmt: off
MODULE_MEMBERS: dict[str, tuple[str, ...]] = {
    "json": ("dumps", "loads", "JSONDecodeError"),
    "re": (
        "compile", "search", "match", "fullmatch", "split", "findall", "finditer",
        "sub", "subn", "escape", "error", "Pattern", "Match", "NOFLAG",
        "A", "ASCII", "I", "IGNORECASE", "M", "MULTILINE", "S", "DOTALL",
        "X", "VERBOSE", "U", "UNICODE",
    ),
    "math": tuple(n for n in dir(math) if not n.startswith("_")),
    "datetime": (
        "date", "datetime", "time", "timedelta", "timezone", "tzinfo", "MINYEAR",
        "MAXYEAR", "UTC",
    ),
    "time": (
        "time", "time_ns", "monotonic", "monotonic_ns", "perf_counter",
        "perf_counter_ns", "process_time", "process_time_ns", "gmtime", "localtime",
        "mktime", "strftime", "strptime", "asctime", "ctime", "struct_time",
        "timezone", "altzone", "daylight", "tzname",
    ),
    "base64": (
        "b64encode", "b64decode", "standard_b64encode", "standard_b64decode",
        "urlsafe_b64encode", "urlsafe_b64decode", "b32encode", "b32decode",
        "b32hexencode", "b32hexdecode", "b16encode", "b16decode", "a85encode",
        "a85decode", "b85encode", "b85decode", "encodebytes", "decodebytes",
    ),
    "hashlib": (
        "md5", "sha1", "sha224", "sha256", "sha384", "sha512", "sha3_224", "sha3_256",
        "sha3_384", "sha3_512", "blake2b", "blake2s", "shake_128", "shake_256", "new",
        "pbkdf2_hmac", "algorithms_guaranteed", "algorithms_available",
    ),
    "hmac": ("new", "compare_digest", "digest", "HMAC"),
    "urllib.parse": (
        "quote", "quote_plus", "quote_from_bytes", "unquote", "unquote_plus",
        "unquote_to_bytes", "urlencode", "urlparse", "urlunparse", "urlsplit",
        "urlunsplit", "urljoin", "urldefrag", "parse_qs", "parse_qsl", "ParseResult",
        "SplitResult", "DefragResult",
    ),
    "decimal": (
        "Decimal", "Context", "localcontext", "DecimalException", "InvalidOperation",
        "DivisionByZero", "Inexact", "Rounded", "Overflow", "Underflow", "Subnormal",
        "Clamped", "FloatOperation", "ROUND_UP", "ROUND_DOWN", "ROUND_CEILING",
        "ROUND_FLOOR", "ROUND_HALF_UP", "ROUND_HALF_DOWN", "ROUND_HALF_EVEN",
        "ROUND_05UP", "MAX_PREC", "MAX_EMAX", "MIN_EMIN", "MIN_ETINY",
    ),
    "collections": ("OrderedDict", "defaultdict", "Counter", "deque", "namedtuple", "ChainMap"),
    "itertools": tuple(n for n in dir(itertools) if not n.startswith("_")),
    "uuid": ("UUID", "uuid3", "uuid4", "uuid5", "NAMESPACE_DNS", "NAMESPACE_URL",
             "NAMESPACE_OID", "NAMESPACE_X500"),
}
# fmt: on

_REAL_MODULES: dict[str, ModuleType] = {
    "json": json,
    "re": re,
    "math": math,
    "datetime": datetime,
    "time": time,
    "base64": base64,
    "hashlib": hashlib,
    "hmac": hmac,
    "urllib.parse": urllib.parse,
    "decimal": decimal,
    "collections": collections,
    "itertools": itertools,
    "uuid": uuid,
}

# Names an ``import`` statement may name: the allowlist plus the ``urllib`` package,
# whose facade holds nothing but ``parse``.
IMPORTABLE: frozenset[str] = frozenset(MODULE_MEMBERS) | {"urllib"}


class ModuleFacade:
    """A read-only stand-in for an allowed module: ``facade.name`` returns the listed
    member, anything else raises ``AttributeError``; every write raises
    ``AttributeError``. It has no ``__name__``, so ``from m import x`` cannot fall back
    to ``sys.modules`` for a missing ``x``."""

    __slots__ = ("_module_name", "_members")

    def __init__(self, module_name: str, members: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_module_name", module_name)
        object.__setattr__(self, "_members", dict(members))

    def __getattr__(self, name: str) -> Any:
        members: dict[str, Any] = object.__getattribute__(self, "_members")
        if type(name) is str and name in members:
            return members[name]
        module_name = object.__getattribute__(self, "_module_name")
        raise AttributeError(f"module '{module_name}' has no attribute '{name}'")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("connector modules are read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("connector modules are read-only")

    def __repr__(self) -> str:
        return f"<module '{object.__getattribute__(self, '_module_name')}'>"


def facade_members(facade: ModuleFacade) -> frozenset[str]:
    """The member names ``facade`` exposes (a module function, not a method, so that
    connector code sees nothing on a facade but the module's own members)."""
    return frozenset(object.__getattribute__(facade, "_members"))


def _plain_function(name: str, function: Any) -> Any:
    """``function`` as a plain Python function with no attributes of its own (no
    ``cache_info``/``cache_clear`` of an ``lru_cache``, no ``func``/``args`` of a
    ``partial``, no ``register``/``registry`` of a ``singledispatch``). A builtin or
    plain function that carries no public attributes is returned unchanged."""
    plain = type(function) in (types.BuiltinFunctionType, types.FunctionType)
    if plain and not any(not a.startswith("_") for a in getattr(function, "__dict__", {})):
        return function

    def member(*args: Any, **kwargs: Any) -> Any:
        return function(*args, **kwargs)

    member.__name__ = member.__qualname__ = name
    member.__doc__ = function.__doc__
    return member


def _namedtuple(*args: Any, **kwargs: Any) -> Any:
    # namedtuple names its caller's module otherwise: a host module (guards' _apply_).
    kwargs.setdefault("module", "connector")
    return collections.namedtuple(*args, **kwargs)


def _member(module: str, name: str) -> object:
    value = getattr(_REAL_MODULES[module], name)
    if module == "collections" and name == "namedtuple":
        value = _namedtuple
    if isinstance(value, set | frozenset):
        # Module-level sets are shared, mutable process state: hand out frozen copies.
        return frozenset(value)
    if callable(value) and not isinstance(value, type):
        return _plain_function(name, value)
    return value


def _build_facades() -> dict[str, ModuleFacade]:
    facades = {
        name: ModuleFacade(name, {m: _member(name, m) for m in members})
        for name, members in MODULE_MEMBERS.items()
    }
    facades["urllib"] = ModuleFacade("urllib", {"parse": facades["urllib.parse"]})
    return facades


FACADES: dict[str, ModuleFacade] = _build_facades()


# Modules C code imports on the connector's behalf through the *current* builtins'
# ``__import__`` (``time.strptime``/``datetime.strptime`` -> ``_strptime``). Connector
# source cannot name them (underscore names fail at compile time), and the worker
# imports them before it is isolated.
_C_LAZY_IMPORTS = frozenset({"_strptime"})


def import_error(name: str) -> str:
    """The message for an import of ``name`` outside the allowlist."""
    allowed = ", ".join(sorted(MODULE_MEMBERS))
    return f"import of '{name}' is not allowed (connectors may import: {allowed})"


def guarded_import(
    name: str,
    globals: Any = None,
    locals: Any = None,
    fromlist: Any = (),
    level: int = 0,
) -> ModuleFacade | ModuleType:
    """The ``__import__`` builtin of connector code.

    Returns the facade for ``import a.b`` (the top-level one, as Python binds ``a``) or
    ``from a.b import x`` (the ``a.b`` one, after checking every name in ``fromlist``
    is a member); the real module only for the lazy imports of C code (``_strptime``).
    Raises ``ImportError`` for anything outside :data:`IMPORTABLE`, relative imports and
    unknown member names.
    """
    if type(name) is not str or type(level) is not int or level != 0:
        raise ImportError("relative imports are not allowed in connectors")
    if name in _C_LAZY_IMPORTS and name in sys.modules:
        return sys.modules[name]
    if name not in IMPORTABLE:
        raise ImportError(import_error(name))
    if fromlist:
        facade = FACADES[name]
        members = facade_members(facade)
        for item in fromlist:
            if type(item) is not str or item not in members:
                raise ImportError(f"cannot import name '{item}' from '{name}'")
        return facade
    return FACADES[name.split(".", 1)[0]]
