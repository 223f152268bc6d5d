"""The egress policy for ``ctx.http``: the decision for one request (DESIGN §4).

The rules (DESIGN §4 "Egress policy for ctx.http"; research/restrictedpython.md §4.5):

- ``allowedHosts`` missing or empty means no network at all; otherwise a request's
  scheme, host and port must match an entry (the grammar is in :mod:`.hosts`).
- The URL is parsed once, strictly, by :func:`.urls.parse_url` (no user-info, no
  backslash, ``%``, whitespace or control characters in the authority, no
  non-canonical numeric hosts such as ``0x7f000001``), and that parse is what the
  request is built from.
- Every address the name resolves to is checked (:mod:`.addresses`);
  loopback/private/link-local addresses pass only when the operator allows private
  egress *and* an entry names that host or address literally (not through a subdomain
  rule or a wildcard). The connection then goes to a checked address (:mod:`.pinned`),
  so there is no second DNS lookup to rebind.
- The operator's resolve override (:mod:`.override`) replaces DNS for the names it
  lists: the name is checked as usual, the override's address is classified like any
  other, except that loopback is allowed for an overridden name.

Refusals raise :class:`~bollard.sandbox.errors.HttpRequestRefused`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from ipaddress import ip_address

from bollard.sandbox.errors import HttpRequestRefused

from .addresses import IPAddress, classify_address
from .hosts import HostRule, parse_entry, suggest_entry
from .override import ResolveOverride
from .resolver import Resolver, system_resolver
from .urls import Target, parse_url

__all__ = ["Destination", "EgressPolicy"]

_WHERE = "allowedHosts in config.json"
_PRIVATE_SETTING = "BOLLARD_ALLOW_PRIVATE_EGRESS"


@dataclass(frozen=True, slots=True)
class Destination:
    """A request target that passed the policy, with the checked addresses to dial and
    the port (``target.port`` unless the operator's resolve override says otherwise)."""

    target: Target
    addresses: tuple[IPAddress, ...]
    port: int = 0

    @property
    def dial_port(self) -> int:
        """The TCP port to connect to."""
        return self.port or self.target.port


class EgressPolicy:
    """The egress rules of one integration (DESIGN §4; see the module docstring).

    ``allowed_hosts`` is the manifest's ``allowedHosts`` (``None`` or empty: no network);
    ``allow_private`` is the operator's ``BOLLARD_ALLOW_PRIVATE_EGRESS``; ``resolver``
    replaces DNS (tests); ``override`` is the operator's ``BOLLARD_EGRESS_RESOLVE``
    (:class:`~.override.ResolveOverride`, never from a manifest). Raises ``ValueError``
    naming the entry if one is invalid
    (see :func:`.hosts.validate_allowed_host_entry`). Refusals raise
    ``HttpRequestRefused("host_not_allowed", message)``; DNS failures
    ``HttpRequestRefused("network_error", message)``. Immutable and cheap to share.
    """

    __slots__ = (
        "allowed_hosts",
        "allow_private",
        "_rules",
        "_resolver",
        "_decisions",
        "_where",
        "_setting",
        "_override",
    )

    def __init__(
        self,
        allowed_hosts: Iterable[str] | None,
        *,
        allow_private: bool = False,
        resolver: Resolver | None = None,
        where: str = _WHERE,
        private_setting: str = _PRIVATE_SETTING,
        override: ResolveOverride | None = None,
    ) -> None:
        # ``where``/``private_setting`` name the allowlist and the private-address opt-in
        # in refusal messages (the webhook policy has its own settings, platform/webhooks/).
        self._where = where
        self._setting = private_setting
        if isinstance(allowed_hosts, str):
            raise TypeError("allowed_hosts is a list of entries, not one string")
        self.allowed_hosts: tuple[str, ...] = tuple(allowed_hosts or ())
        self.allow_private = allow_private
        rules = []
        for index, entry in enumerate(self.allowed_hosts):
            try:
                rules.append(parse_entry(entry))
            except ValueError as exc:
                raise ValueError(f"allowedHosts[{index}]: {exc}") from None
        self._rules: tuple[HostRule, ...] = tuple(rules)
        self._resolver: Resolver = resolver or system_resolver
        self._override = override or None
        # (scheme, host, port) -> "private addresses allowed"; a policy has few hosts.
        self._decisions: dict[tuple[str, str, int], bool] = {}

    @property
    def network_enabled(self) -> bool:
        """``False`` when ``allowedHosts`` is missing or empty."""
        return bool(self._rules)

    def check_url(self, url: str) -> Target:
        """Parse ``url`` and check its scheme, host and port against the entries.

        Returns the :class:`Target` to connect to. Raises ``HttpRequestRefused`` with
        code ``host_not_allowed`` and a message naming the host and the fix.
        """
        try:
            target = parse_url(url)
        except ValueError as exc:
            raise HttpRequestRefused("host_not_allowed", f"Refused URL: {exc}.") from None
        self._private_ok(target)
        return target

    async def authorize(self, url: str) -> Destination:
        """:meth:`check_url` then :meth:`resolve`: the full decision for one URL."""
        target = self.check_url(url)
        return Destination(target, await self.resolve(target), self.dial_port(target))

    def dial_port(self, target: Target) -> int:
        """The port to connect to for ``target``: the override's, else ``target.port``."""
        hit = (
            self._override.lookup(target.host, target.port) if self._override and target.ip is None else None
        )
        return hit[1] if hit else target.port

    async def resolve(self, target: Target) -> tuple[IPAddress, ...]:
        """Resolve ``target.host`` (IP literals as themselves) and check every address.

        Returns the addresses in resolver order, all allowed. Raises
        ``HttpRequestRefused``: ``host_not_allowed`` if the host is not allowed or any
        address is not (a name resolving to both public and private addresses is
        refused whole), ``network_error`` if the name does not resolve.
        """
        private_ok = self._private_ok(target)
        hit = (
            self._override.lookup(target.host, target.port) if self._override and target.ip is None else None
        )
        if hit is not None:
            address, _ = hit
            kind, label = classify_address(address)
            # The operator pointed this name at a local stand-in: loopback is what it is for.
            if kind == "public" or label == "loopback" or (kind == "private" and private_ok):
                return (address,)
            raise HttpRequestRefused("host_not_allowed", self._address_message(target, address, kind, label))
        if target.ip is not None:
            addresses: tuple[IPAddress, ...] = (target.ip,)
        else:
            try:
                texts = await self._resolver(target.host, target.port)
            except OSError as exc:
                reason = exc.strerror or str(exc)
                raise HttpRequestRefused(
                    "network_error", f"Could not resolve {target.host}: {reason}."
                ) from None
            try:
                addresses = tuple(dict.fromkeys(ip_address(text) for text in texts))
            except ValueError:
                raise HttpRequestRefused(
                    "network_error", f"Resolving {target.host} gave an invalid address."
                ) from None
            if not addresses:
                raise HttpRequestRefused("network_error", f"Could not resolve {target.host}: no addresses.")
        for address in addresses:
            kind, label = classify_address(address)
            if kind == "public" or (kind == "private" and private_ok):
                continue
            raise HttpRequestRefused("host_not_allowed", self._address_message(target, address, kind, label))
        return addresses

    def _private_ok(self, target: Target) -> bool:
        """Whether ``target`` is allowed and, if so, may reach private addresses."""
        key = (target.scheme, target.host, target.port)
        decision = self._decisions.get(key)
        if decision is None:
            matching = [rule for rule in self._rules if rule.matches(target)]
            if not matching:
                raise HttpRequestRefused("host_not_allowed", self._host_message(target))
            decision = self.allow_private and any(
                rule.host == target.host and not rule.wildcard for rule in matching
            )
            if len(self._decisions) < 1024:
                self._decisions[key] = decision
        return decision

    def _host_message(self, target: Target) -> str:
        who = "the connector should reach it" if self._where == _WHERE else "it should be reachable"
        fix = f'Add "{suggest_entry(target)}" to {self._where} if {who}.'
        if not self._rules and self._where == _WHERE:
            return (
                f"{target.origin} is not allowed: this integration has no allowedHosts, "
                f"so its connector has no network access. {fix}"
            )
        if not self._rules:
            return f"{target.origin} is not allowed: {self._where} is empty, so nothing is reachable. {fix}"
        same_host = [rule.entry for rule in self._rules if rule.covers_host(target.host)]
        if same_host:
            return (
                f"{target.origin} is not allowed: {self._where} has {', '.join(same_host)}, "
                f"which allows other schemes or ports only (https on port 443 unless an "
                f"entry names them). {fix}"
            )
        listed = ", ".join(rule.entry for rule in self._rules[:10])
        more = ", …" if len(self._rules) > 10 else ""
        return f"{target.host} is not in {self._where} ({listed}{more}). {fix}"

    def _address_message(self, target: Target, address: IPAddress, kind: str, label: str) -> str:
        where = target.host if target.ip is not None else f"{target.host} resolves to {address}"
        if kind == "forbidden":
            return f"{where}, which is never a valid destination ({label})."
        head = f"{where}, which is a private or local address ({label})"
        if not self.allow_private:
            return (
                f"{head}; {'connectors' if self._where == _WHERE else 'webhooks'} may not reach such "
                f"addresses. To allow it, "
                f"the operator sets {self._setting}=true and {self._where} names "
                f'"{suggest_entry(target)}" exactly.'
            )
        return (
            f"{head}; private addresses are reachable only through an entry naming the "
            f'host exactly, not a domain or wildcard entry: add "{suggest_entry(target)}" '
            f"to {self._where}."
        )
