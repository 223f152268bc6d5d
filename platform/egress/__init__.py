"""Connector egress: the policy for ``ctx.http`` and the host-side sender (DESIGN §4).

Modules, one job each:

- :mod:`.hosts`: the ``allowedHosts`` grammar (parsing and matching entries, host
  normalisation); imports no HTTP client, so the manifest loader can use it cheaply;
- :mod:`.addresses`: which IP addresses a connector may reach;
- :mod:`.urls`: the one strict parse of a request URL;
- :mod:`.resolver`: DNS lookups behind a short cache;
- :mod:`.override`: the operator's resolve override (``BOLLARD_EGRESS_RESOLVE``);
- :mod:`.multipart`: multipart/form-data bodies for ``formFields``;
- :mod:`.policy`: :class:`EgressPolicy`, the decision for one request;
- :mod:`.pinned`: connections that go only to addresses the policy checked (httpcore's
  pool on an asyncio backend that charges every socket read to the request's budget);
- :mod:`.budget`: what one request may cost the host (wire bytes, reads, body pieces,
  bytes before the head) and the one content-coding the host decodes;
- :mod:`.request`: a connector's request on the wire (header rules, the body, the
  httpcore request to a checked address);
- :mod:`.sender`: :func:`send` (one request, redirects, size and time budgets) and the
  shared client factory :func:`make_client`.

The public names below are importable from this package (``from bollard.platform.egress
import EgressPolicy, send``). They load on first use (PEP 562 ``__getattr__``), so that
importing :mod:`.hosts` alone does not import httpcore. Refusals raise
:class:`bollard.sandbox.errors.HttpRequestRefused`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .addresses import AddressClass, IPAddress, classify_address
    from .hosts import normalise_host, validate_allowed_host_entry
    from .override import ResolveOverride
    from .policy import Destination, EgressPolicy
    from .resolver import (
        CachingResolver,
        Resolver,
        getaddrinfo_resolver,
        system_resolver,
    )
    from .sender import MAX_REDIRECTS, EgressClient, make_client, send
    from .urls import Target, parse_url

# public name -> the submodule defining it
_EXPORTS: dict[str, str] = {
    "AddressClass": "addresses",
    "IPAddress": "addresses",
    "classify_address": "addresses",
    "normalise_host": "hosts",
    "validate_allowed_host_entry": "hosts",
    "Destination": "policy",
    "EgressPolicy": "policy",
    "ResolveOverride": "override",
    "CachingResolver": "resolver",
    "Resolver": "resolver",
    "getaddrinfo_resolver": "resolver",
    "system_resolver": "resolver",
    "MAX_REDIRECTS": "sender",
    "EgressClient": "sender",
    "make_client": "sender",
    "send": "sender",
    "Target": "urls",
    "parse_url": "urls",
}

__all__ = [
    "MAX_REDIRECTS",
    "AddressClass",
    "CachingResolver",
    "Destination",
    "EgressClient",
    "EgressPolicy",
    "IPAddress",
    "ResolveOverride",
    "Resolver",
    "Target",
    "classify_address",
    "getaddrinfo_resolver",
    "make_client",
    "normalise_host",
    "parse_url",
    "send",
    "system_resolver",
    "validate_allowed_host_entry",
]


def __getattr__(name: str) -> object:
    """Load a public name from its submodule on first access (PEP 562)."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value: object = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
