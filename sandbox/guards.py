"""Run-time guards and builtins of connector code (DESIGN §4.1).

RestrictedPython rewrites attribute, item, iteration, write, augmented-assignment
and ``*args`` operations into calls of hooks the host provides; this module provides
them, following research/restrictedpython.md:

- ``_getattr_``: :func:`guarded_getattr`, built on ``safer_getattr_raise`` (a missing
  attribute raises instead of returning ``None``; non-``str`` names, underscore names,
  ``INSPECT_ATTRIBUTES`` and ``str.format``/``format_map`` are refused), plus: only the
  listed names on ctx objects, no ``AttributeError.obj`` (CVE-2024-47532), no
  ``mro`` on types, and no facade gadgets (issue 9 item 6): a pure-Python method
  of a host class read from the class (``collections.Counter.copy``) comes wrapped
  so that it only runs on instances of that class (``Counter.copy(int)`` ran
  ``self.__class__(self)`` and returned ``type``); the accessor functions of host
  properties (``fget``/``fset``/``fdel``) and ``register`` of abstract classes (a
  process-wide registry) are refused.
- ``_write_``: :func:`guarded_write`, ``full_write_guard`` semantics: plain
  containers and instances/classes created by connector code are writable; host
  objects, modules and classes never.
- ``_getitem_``, ``_getiter_``, ``_inplacevar_``, ``_apply_``, the unpack guards.
- :func:`make_builtins`: ``safe_builtins`` minus ``BaseException``/``SystemExit``/
  ``KeyboardInterrupt``/``GeneratorExit`` (they would bypass ``except Exception``)
  and ``MemoryError`` (so a MemoryError at the boundary is a real one), minus
  ``setattr``/``delattr``, plus the helpers connector authors need.
"""

from __future__ import annotations

import abc
import builtins
import collections
import operator
import types
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from RestrictedPython.Guards import (
    full_write_guard,
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    safe_builtins,
    safer_getattr_raise,
)

from .ctx import PUBLIC_ATTRIBUTES
from .imports import guarded_import

MAX_RANGE = 1_000_000  # elements in one range(); larger loops should page

# Classes created by connector code (through ``__metaclass__``); their instances and
# the classes themselves are writable, as AccessControl marks them ``_guarded_writes``.
_CONNECTOR_CLASSES: weakref.WeakSet[type] = weakref.WeakSet()

# Container types connector code creates itself and may write to.
_WRITABLE_TYPES = frozenset(
    {
        dict,
        list,
        collections.OrderedDict,
        collections.defaultdict,
        collections.Counter,
        collections.deque,
        collections.ChainMap,
    }
)


def _method_owner(cls: type, name: str) -> type | None:
    """The host class in ``cls``'s MRO whose ``__dict__`` holds ``name`` as a plain
    Python function, or None (a C method checks its ``self`` itself; a connector's own
    methods are the connector's business)."""
    for klass in cls.__mro__:
        if name in klass.__dict__:
            found = klass.__dict__[name]
            if type(found) is types.FunctionType and klass not in _CONNECTOR_CLASSES:
                return klass
            return None
    return None


def _checked_method(owner: type, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """``function`` (a method of ``owner`` read from a class) that refuses to run on a
    ``self`` that is not an instance of ``owner``: pure-Python methods use
    ``self.__class__``, ``type(self)`` or ``self.__dict__``, which on a foreign
    ``self`` (a class, a builtin) hand out ``type`` and three-argument classes."""

    def method(*args: Any, **kwargs: Any) -> Any:
        # type(self).__mro__ cannot be faked (isinstance consults ABC registries).
        if not args or owner not in type(args[0]).__mro__:
            raise TypeError(f"{owner.__name__}.{name}() needs a {owner.__name__} as its first argument")
        return function(*args, **kwargs)

    method.__name__ = method.__qualname__ = name
    return method


def guarded_getattr(obj: Any, name: Any) -> Any:
    """``obj.name`` for connector code; raises ``AttributeError`` when refused or
    missing, ``NotImplementedError`` for ``str.format``/``format_map``. A host class's
    pure-Python method read from a class comes back as :func:`_checked_method`."""
    allowed = PUBLIC_ATTRIBUTES.get(type(obj))
    if allowed is not None and name not in allowed:
        raise AttributeError(f"'{name}' is not available on this object")
    if name == "obj" and isinstance(obj, AttributeError):
        # AttributeError.obj hands out the object a lookup failed on (CVE-2024-47532).
        raise AttributeError("AttributeError.obj is not available in connectors")
    if name == "mro" and isinstance(obj, type):
        raise AttributeError("type.mro is not available in connectors")
    if name in ("fget", "fset", "fdel") and isinstance(obj, property):
        raise AttributeError(f"property.{name} is not available in connectors")
    if name == "register" and isinstance(obj, abc.ABCMeta) and obj not in _CONNECTOR_CLASSES:
        raise AttributeError("register() of a host class is not available in connectors")
    if name in ("format", "format_map") and (
        isinstance(obj, str) or (isinstance(obj, type) and issubclass(obj, str))
    ):
        raise NotImplementedError(
            "str.format() is not available in connectors: use f-strings or the % operator"
        )
    value = safer_getattr_raise(obj, name)
    if type(value) is types.FunctionType and isinstance(obj, type):
        owner = _method_owner(obj, name)
        if owner is not None:
            return _checked_method(owner, name, value)
    return value


def guarded_getitem(obj: Any, key: Any) -> Any:
    """``obj[key]``. Nothing subscriptable reaches connector code that is not its own
    data or a module's (immutable) value, so this is the plain operation."""
    return obj[key]


def guarded_iter(obj: Any, *sentinel: Any) -> Iterator[Any]:
    """``iter(obj)`` for ``for`` loops, comprehensions and unpacking (``_getiter_``),
    and the ``iter`` builtin (one or two arguments)."""
    return builtins.iter(obj, *sentinel)


def connector_metaclass(name: str, bases: tuple[type, ...], namespace: dict[str, Any]) -> type:
    """``__metaclass__`` for ``class`` statements in connector code: a plain ``type``
    call, recording the class so :func:`guarded_write` lets the connector set
    attributes on it and its instances."""
    cls = type(name, bases, namespace)
    _CONNECTOR_CLASSES.add(cls)
    return cls


def defined_by_connector(cls: type) -> bool:
    """Whether connector code created ``cls`` with a ``class`` statement."""
    return cls in _CONNECTOR_CLASSES


def guarded_write(obj: Any) -> Any:
    """``_write_``: returns ``obj`` when connector code may assign to its attributes or
    items (plain containers, classes the connector defined and their instances),
    else RestrictedPython's read-only wrapper (every write raises ``TypeError``)."""
    kind = type(obj)
    if kind in _WRITABLE_TYPES or kind in _CONNECTOR_CLASSES:
        return obj
    if isinstance(obj, type) and obj in _CONNECTOR_CLASSES:
        return obj
    return full_write_guard(obj)


_INPLACE_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+=": operator.iadd,
    "-=": operator.isub,
    "*=": operator.imul,
    "/=": operator.itruediv,
    "//=": operator.ifloordiv,
    "%=": operator.imod,
    "**=": operator.ipow,
    "<<=": operator.ilshift,
    ">>=": operator.irshift,
    "|=": operator.ior,
    "^=": operator.ixor,
    "&=": operator.iand,
    "@=": operator.imatmul,
}


def guarded_inplacevar(op: str, target: Any, value: Any) -> Any:
    """``_inplacevar_``: ``name += value`` and the other augmented assignments to a
    name (RestrictedPython refuses them on attributes and items)."""
    return _INPLACE_OPERATORS[op](target, value)


def guarded_apply(function: Any, *args: Any, **kwargs: Any) -> Any:
    """``_apply_``: a call written with ``*args``/``**kwargs``."""
    return function(*args, **kwargs)


def iter_unpack_sequence(it: Any, spec: Any, getiter: Any) -> Any:
    """``_iter_unpack_sequence_`` (RestrictedPython's guard, via ``_getiter_``)."""
    return guarded_iter_unpack_sequence(it, spec, getiter)


def unpack_sequence(it: Any, spec: Any, getiter: Any) -> Any:
    """``_unpack_sequence_`` (RestrictedPython's guard, via ``_getiter_``)."""
    return guarded_unpack_sequence(it, spec, getiter)


# --- builtins ---------------------------------------------------------------------------


def _range(*args: Any) -> range:
    result = builtins.range(*args)
    if len(result) > MAX_RANGE:
        raise ValueError(f"range() is limited to {MAX_RANGE} elements in connectors")
    return result


def _first_iterable(args: tuple[Any, ...]) -> tuple[Any, ...]:
    # min/max/sum/any/all iterate their single iterable argument through _getiter_.
    if len(args) == 1:
        return (guarded_iter(args[0]),)
    return args


def _sorted(iterable: Any, *, key: Any = None, reverse: Any = False) -> list[Any]:
    return builtins.sorted(guarded_iter(iterable), key=key, reverse=reverse)


def _min(*args: Any, **kwargs: Any) -> Any:
    return builtins.min(*_first_iterable(args), **kwargs)


def _max(*args: Any, **kwargs: Any) -> Any:
    return builtins.max(*_first_iterable(args), **kwargs)


def _sum(iterable: Any, start: Any = 0) -> Any:
    return builtins.sum(guarded_iter(iterable), start)


def _any(iterable: Any) -> bool:
    return builtins.any(guarded_iter(iterable))


def _all(iterable: Any) -> bool:
    return builtins.all(guarded_iter(iterable))


def _enumerate(iterable: Any, start: Any = 0) -> Iterator[tuple[int, Any]]:
    return builtins.enumerate(guarded_iter(iterable), start)


def _zip(*iterables: Any, strict: Any = False) -> Iterator[tuple[Any, ...]]:
    return builtins.zip(*(guarded_iter(i) for i in iterables), strict=bool(strict))


def _map(function: Any, *iterables: Any) -> Iterator[Any]:
    return builtins.map(function, *(guarded_iter(i) for i in iterables))


def _filter(function: Any, iterable: Any) -> Iterator[Any]:
    return builtins.filter(function, guarded_iter(iterable))


def _reversed(sequence: Any) -> Iterator[Any]:
    return builtins.iter(builtins.list(guarded_iter(sequence))[::-1])


_REMOVED = frozenset(
    {
        "BaseException",
        "SystemExit",
        "KeyboardInterrupt",
        "GeneratorExit",
        "MemoryError",
        "setattr",
        "delattr",
        "_getattr_",
    }
)

_BASE_BUILTINS: dict[str, Any] = {k: v for k, v in safe_builtins.items() if k not in _REMOVED}
_BASE_BUILTINS.update(
    {
        # The container and scalar types themselves, so isinstance(x, list) works.
        # Their C-level iteration bypasses nothing here: _getiter_ is a plain iter(),
        # since connectors have no per-object permissions to re-check.
        "list": builtins.list,
        "dict": builtins.dict,
        "tuple": builtins.tuple,
        "set": builtins.set,
        "frozenset": builtins.frozenset,
        "sorted": _sorted,
        "min": _min,
        "max": _max,
        "sum": _sum,
        "any": _any,
        "all": _all,
        "enumerate": _enumerate,
        "zip": _zip,
        "map": _map,
        "filter": _filter,
        "reversed": _reversed,
        "iter": guarded_iter,
        "next": builtins.next,
        "range": _range,
        "bin": builtins.bin,
        "format": builtins.format,
        "RecursionError": RecursionError,
        "TimeoutError": TimeoutError,
        "ConnectionError": ConnectionError,
        "NotImplemented": NotImplemented,
        "__import__": guarded_import,
    }
)


def make_builtins() -> dict[str, Any]:
    """A fresh ``__builtins__`` dict for one execution (a copy, so nothing a run does
    to it reaches the next)."""
    return dict(_BASE_BUILTINS)
