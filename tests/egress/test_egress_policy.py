"""Unit tests for the egress policy (DESIGN §4 "Egress policy for ctx.http").

Host rules are checked with :meth:`EgressPolicy.check_url`; address rules with
:meth:`EgressPolicy.authorize` and an injected resolver (plus one real lookup of
``localhost``).
"""

from __future__ import annotations

from collections.abc import Sequence
from ipaddress import ip_address

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bollard.platform.egress import (
    CachingResolver,
    EgressPolicy,
    classify_address,
    normalise_host,
    parse_url,
    validate_allowed_host_entry,
)
from bollard.sandbox.errors import HttpRequestRefused


def fixed_resolver(mapping: dict[str, Sequence[str]]):
    """A resolver answering from ``mapping`` and recording the names it was asked."""
    asked: list[str] = []

    async def resolve(host: str, port: int) -> Sequence[str]:
        asked.append(host)
        if host not in mapping:
            raise OSError(-2, "Name or service not known")
        return mapping[host]

    resolve.asked = asked  # type: ignore[attr-defined]
    return resolve


def refused(policy: EgressPolicy, url: str) -> HttpRequestRefused:
    with pytest.raises(HttpRequestRefused) as info:
        policy.check_url(url)
    return info.value


# ----------------------------------------------------------------- entries


@pytest.mark.parametrize(
    "entry",
    [
        "api.example.com",
        "myshopify.com",
        "*.example.com",
        "API.Example.COM",
        "example.com.",
        "bücher.de",
        "xn--bcher-kva.de",
        "https://api.example.com",
        "https://api.example.com:8443",
        "http://localhost:8080",
        "localhost",
        "HTTP://LOCALHOST:8080/",
        "127.0.0.1",
        "http://10.0.0.5:5432",
        "[::1]",
        "http://[fd00::1]:8080",
    ],
)
def test_valid_entries(entry: str) -> None:
    assert validate_allowed_host_entry(entry) is None


@pytest.mark.parametrize(
    ("entry", "fragment"),
    [
        ("", "empty"),
        (" api.example.com", "whitespace"),
        ("api.example.com/v1", "no path"),
        ("https://api.example.com/v1?x=1", "no path"),
        ("ftp://files.example.com", "scheme"),
        ("user@api.example.com", "user-info"),
        ("api.example.com:0", "port"),
        ("api.example.com:70000", "port"),
        ("api.example.com:http", "port"),
        ("*", "'*'"),
        ("*.com", "too broad"),
        ("*.127.0.0.1", "too broad"),
        ("api.*.example.com", "'*'"),
        ("::1", "[::1]"),
        ("0x7f000001", "dotted-decimal"),
        ("2130706433", "dotted-decimal"),
        ("127.1", "dotted-decimal"),
        ("0177.0.0.1", "dotted-decimal"),
        ("api..example.com", "label"),
        ("-api.example.com", "label"),
        ("api.example%2ecom", "'%'"),
        ("evil.example\\@allowed.example", "user-info"),
        ("xn--zz-.example", "label"),
    ],
)
def test_invalid_entries_have_a_message(entry: str, fragment: str) -> None:
    message = validate_allowed_host_entry(entry)
    assert message is not None
    assert fragment in message


def test_policy_rejects_a_bad_entry_naming_its_index() -> None:
    with pytest.raises(ValueError, match=r"allowedHosts\[1\]"):
        EgressPolicy(["api.example.com", "https://x.example.com/path"])


def test_policy_rejects_a_bare_string() -> None:
    with pytest.raises(TypeError):
        EgressPolicy("api.example.com")


# ----------------------------------------------------------------- host rules

ENTRIES = [
    "myshopify.com",
    "*.example.com",
    "api.github.com",
    "bücher.de",
    "http://localhost:8080",
    "https://secure.example.org:8443",
    "intranet",
]


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("https://myshopify.com/admin", "myshopify.com"),
        ("https://shop.myshopify.com/admin/api/products.json", "shop.myshopify.com"),
        ("https://a.b.myshopify.com/", "a.b.myshopify.com"),
        ("https://MyShop.MYSHOPIFY.com/", "myshop.myshopify.com"),
        ("HTTPS://api.github.com/user", "api.github.com"),
        ("https://api.github.com./user", "api.github.com"),
        ("https://api.github.com:443/user", "api.github.com"),
        ("https://api.github.com", "api.github.com"),
        ("https://api.github.com?x=1", "api.github.com"),
        ("https://www.example.com/", "www.example.com"),
        ("https://a.b.example.com/", "a.b.example.com"),
        ("https://xn--bcher-kva.de/", "xn--bcher-kva.de"),
        ("https://BÜCHER.de/", "xn--bcher-kva.de"),
        ("https://shop.bücher.de/", "shop.xn--bcher-kva.de"),
        ("http://localhost:8080/x", "localhost"),
        ("https://secure.example.org:8443/", "secure.example.org"),
        ("https://intranet/", "intranet"),
    ],
)
def test_allowed_urls(url: str, host: str) -> None:
    assert EgressPolicy(ENTRIES).check_url(url).host == host


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        # not listed, or only look-alikes of listed hosts
        ("https://evil.com/", "not in allowedHosts"),
        ("https://evilmyshopify.com/", "not in allowedHosts"),
        ("https://myshopify.com.evil.com/", "not in allowedHosts"),
        ("https://example.com/", "not in allowedHosts"),  # *. is subdomains only
        ("https://github.com/", "not in allowedHosts"),
        ("https://x.api.github.com.evil/", "not in allowedHosts"),
        ("https://www.intranet/", "not in allowedHosts"),  # single label: exact only
        ("https://bucher.de/", "not in allowedHosts"),
        # schemes and ports
        ("http://api.github.com/", "other schemes or ports"),
        ("https://api.github.com:8443/", "other schemes or ports"),
        ("https://localhost:8080/", "other schemes or ports"),
        ("http://localhost/", "other schemes or ports"),
        ("http://localhost:8081/", "other schemes or ports"),
        ("https://secure.example.org/", "other schemes or ports"),
        ("ftp://api.github.com/", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("javascript:alert(1)", "absolute"),
        # malformed or ambiguous URLs
        ("/relative/path", "absolute"),
        ("//api.github.com/user", "absolute"),
        ("https:///api.github.com", "empty"),
        ("https:\\\\api.github.com", "absolute"),
        ("https://api.github.com../", "label"),
        ("https://api.github.com:/", "port"),
        ("https://api.github.com:99999/", "port"),
        ("https://api.github.com:+443/", "port"),
        ("https://api.github.com:44３/", "port"),  # a fullwidth digit
        # user-info and parser differentials (research/restrictedpython.md, end)
        ("https://api.github.com@evil.com/", "user-info"),
        ("https://user:pass@api.github.com/", "user-info"),
        ("https://evil.example\\@api.github.com/", "user-info"),
        ("https://evil.example\\.api.github.com/", "backslash"),
        ("https://api.github.com%2eevil.example/", "'%'"),
        ("https://api%2egithub.com/", "'%'"),
        ("https://api.github.com%2f@evil.com/", "user-info"),
        ("https://api.github.com /", "whitespace"),
        ("https://api.github.com\u3000/", "whitespace"),
        ("https://api.github.com\u200b/", "control"),
        ("https://api.github.com/\nHost: evil.com", "control"),
        ("https://api.github.com\t/", "control"),
        ("https://[::1/", "unterminated"),
        ("https://[::1]x/", "after the IPv6"),
        ("https://::1/", "[::1]"),
    ],
)
def test_refused_urls(url: str, fragment: str) -> None:
    error = refused(EgressPolicy(ENTRIES), url)
    assert error.code == "host_not_allowed"
    assert fragment in error.message


def test_refusal_names_the_host_and_the_fix() -> None:
    error = refused(EgressPolicy(["api.github.com"]), "https://evil.com/steal?token=s3cret")
    assert "evil.com" in error.message
    assert 'Add "evil.com" to allowedHosts in config.json' in error.message
    assert "s3cret" not in error.message  # the query may carry secrets


def test_refusal_suggests_scheme_and_port_when_needed() -> None:
    error = refused(EgressPolicy(["localhost"]), "http://localhost:8080/")
    assert '"http://localhost:8080"' in error.message


@pytest.mark.parametrize("entries", [None, []])
def test_no_allowed_hosts_means_no_network(entries: list[str] | None) -> None:
    policy = EgressPolicy(entries)
    assert not policy.network_enabled
    error = refused(policy, "https://api.github.com/")
    assert error.code == "host_not_allowed"
    assert "no network access" in error.message


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0X7F000001/",
        "http://127.1/",
        "http://0177.0.0.1/",
        "http://127.0.0.01/",
        "http://0x7f.0.0.1/",
        "http://017700000001/",
        "http://127.0.0.1.2/",
        "http://1.2.3.0x4/",
    ],
)
def test_odd_spellings_of_addresses_are_refused(url: str) -> None:
    # Even a policy naming 127.0.0.1 and allowing private egress refuses them: only
    # dotted decimal is an address, and these are not host names.
    policy = EgressPolicy(["http://127.0.0.1"], allow_private=True)
    error = refused(policy, url)
    assert "dotted-decimal" in error.message


def test_ipv6_literals_compare_canonically() -> None:
    policy = EgressPolicy(["http://[fd00::1]:8080"])
    assert policy.check_url("http://[FD00:0:0::0001]:8080/").host == "fd00::1"
    assert refused(policy, "http://[fd00::2]:8080/").code == "host_not_allowed"


def test_parse_keeps_escapes_and_encodes_the_rest() -> None:
    target = parse_url("https://api.example.com/a/%2e%2e/caf\u00e9 x?q=a b&r=%26#frag")
    assert target.path == "/a/%2e%2e/caf%C3%A9%20x"
    assert target.query == "q=a%20b&r=%26"
    assert target.url == "https://api.example.com/a/%2e%2e/caf%C3%A9%20x?q=a%20b&r=%26"


def test_params_are_appended_to_the_query() -> None:
    target = parse_url("https://api.example.com/items?a=1")
    with_params = target.with_params({"a": 2, "b": [True, "x y"], "c": None})
    assert with_params.query == "a=1&a=2&b=true&b=x+y&c="
    assert parse_url("https://api.example.com/").with_params({"q": "z"}).url == (
        "https://api.example.com/?q=z"
    )


@pytest.mark.parametrize(
    ("raw", "host"),
    [
        ("Example.COM.", "example.com"),
        ("ｅｘａｍｐｌｅ．ｃｏｍ", "example.com"),  # fullwidth, mapped by UTS #46
        ("allowed。com", "allowed.com"),  # ideographic full stop
        ("Bücher.de", "xn--bcher-kva.de"),
        ("192.0.2.1", "192.0.2.1"),
        ("[::FFFF:127.0.0.1]", "::ffff:7f00:1"),
    ],
)
def test_normalise_host(raw: str, host: str) -> None:
    assert normalise_host(raw)[0] == host


def test_normalised_numeric_unicode_is_still_refused() -> None:
    # Fullwidth digits map to ASCII digits under UTS #46: the result is numeric again.
    with pytest.raises(ValueError, match="dotted-decimal"):
        normalise_host("１２７.１")


# ----------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("93.184.215.14", "public"),
        ("2606:4700::1111", "public"),
        ("::ffff:8.8.8.8", "public"),
        ("64:ff9b::808:808", "public"),
        ("127.0.0.1", "private"),
        ("127.255.255.254", "private"),
        ("10.1.2.3", "private"),
        ("172.31.255.255", "private"),
        ("192.168.0.1", "private"),
        ("100.64.0.1", "private"),
        ("169.254.169.254", "private"),
        ("::1", "private"),
        ("fd00:ec2::254", "private"),
        ("fc00::1", "private"),
        ("fe80::1", "private"),
        ("::ffff:127.0.0.1", "private"),
        ("::ffff:169.254.169.254", "private"),
        ("64:ff9b::a9fe:a9fe", "private"),
        ("2002:a9fe:a9fe::1", "private"),
        ("0.0.0.0", "forbidden"),
        ("::", "forbidden"),
        ("224.0.0.1", "forbidden"),
        ("ff02::1", "forbidden"),
        ("255.255.255.255", "forbidden"),
        ("240.0.0.1", "forbidden"),
        ("192.0.2.1", "forbidden"),
        ("2001:db8::1", "forbidden"),
        ("::127.0.0.1", "forbidden"),
        ("2001::1", "forbidden"),
        ("::ffff:0.0.0.0", "forbidden"),
        ("4000::1", "forbidden"),
    ],
)
def test_classify_address(address: str, kind: str) -> None:
    assert classify_address(ip_address(address))[0] == kind


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "10.0.0.5",
        "172.16.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "169.254.169.254",
        "[::1]",
        "[0:0:0:0:0:0:0:1]",
        "[::ffff:127.0.0.1]",
        "[::ffff:7f00:1]",
        "[::ffff:169.254.169.254]",
        "[64:ff9b::7f00:1]",
        "[2002:7f00:1::]",
        "[fd00:ec2::254]",
        "[fe80::1]",
        "[::127.0.0.1]",
        "0.0.0.0",
        "[::]",
        "224.0.0.1",
    ],
)
async def test_private_address_literals_are_refused(host: str) -> None:
    # The entry names the address, so the host rule passes; the address rule refuses.
    resolver = fixed_resolver({})
    policy = EgressPolicy([f"http://{host}"], resolver=resolver)
    with pytest.raises(HttpRequestRefused) as info:
        await policy.authorize(f"http://{host}/latest/meta-data/")
    assert info.value.code == "host_not_allowed"
    assert resolver.asked == []  # literals are never looked up


async def test_public_address_literal_is_allowed_without_dns() -> None:
    resolver = fixed_resolver({})
    destination = await EgressPolicy(["93.184.215.14"], resolver=resolver).authorize("https://93.184.215.14/")
    assert [str(a) for a in destination.addresses] == ["93.184.215.14"]
    assert resolver.asked == []


@pytest.mark.parametrize("address", ["127.0.0.1", "169.254.169.254", "::1", "fd00:ec2::254"])
async def test_names_resolving_to_private_addresses_are_refused(address: str) -> None:
    policy = EgressPolicy(["rebind.example"], resolver=fixed_resolver({"rebind.example": [address]}))
    with pytest.raises(HttpRequestRefused) as info:
        await policy.authorize("https://rebind.example/")
    assert info.value.code == "host_not_allowed"
    assert f"rebind.example resolves to {address}" in info.value.message
    assert "BOLLARD_ALLOW_PRIVATE_EGRESS" in info.value.message


async def test_one_private_address_among_public_ones_refuses_the_name() -> None:
    resolver = fixed_resolver({"mixed.example": ["93.184.215.14", "127.0.0.1"]})
    policy = EgressPolicy(["mixed.example"], resolver=resolver)
    with pytest.raises(HttpRequestRefused, match="127.0.0.1"):
        await policy.authorize("https://mixed.example/")


async def test_public_name_resolves_to_checked_addresses() -> None:
    resolver = fixed_resolver({"api.example.com": ["93.184.215.14", "2606:4700::1111"]})
    policy = EgressPolicy(["example.com"], resolver=resolver)
    destination = await policy.authorize("https://api.example.com/x")
    assert [str(a) for a in destination.addresses] == ["93.184.215.14", "2606:4700::1111"]
    assert resolver.asked == ["api.example.com"]


async def test_private_allowed_only_for_entries_naming_the_host_literally() -> None:
    resolver = fixed_resolver({"db.corp.example": ["10.0.0.5"], "api.corp.example": ["10.0.0.6"]})
    policy = EgressPolicy(
        ["http://db.corp.example:8080", "corp.example", "*.corp.example"],
        allow_private=True,
        resolver=resolver,
    )
    destination = await policy.authorize("http://db.corp.example:8080/")
    assert [str(a) for a in destination.addresses] == ["10.0.0.5"]
    # Reached only through the domain and wildcard entries: refused, with the fix.
    with pytest.raises(HttpRequestRefused) as info:
        await policy.authorize("https://api.corp.example/")
    assert 'add "api.corp.example"' in info.value.message


async def test_private_literal_needs_the_operator_setting() -> None:
    resolver = fixed_resolver({})
    url = "http://127.0.0.1:8080/"
    with pytest.raises(HttpRequestRefused, match="BOLLARD_ALLOW_PRIVATE_EGRESS"):
        await EgressPolicy(["http://127.0.0.1:8080"], resolver=resolver).authorize(url)
    allowed = EgressPolicy(["http://127.0.0.1:8080"], allow_private=True, resolver=resolver)
    assert [str(a) for a in (await allowed.authorize(url)).addresses] == ["127.0.0.1"]


async def test_another_spelling_of_an_allowed_private_literal_is_refused() -> None:
    policy = EgressPolicy(["http://127.0.0.1:8080"], allow_private=True)
    with pytest.raises(HttpRequestRefused):
        await policy.authorize("http://[::ffff:127.0.0.1]:8080/")


@pytest.mark.parametrize("address", ["0.0.0.0", "224.0.0.1", "::", "ff02::1"])
async def test_forbidden_addresses_stay_refused_even_when_named(address: str) -> None:
    resolver = fixed_resolver({"odd.example": [address]})
    policy = EgressPolicy(["odd.example"], allow_private=True, resolver=resolver)
    with pytest.raises(HttpRequestRefused, match="never a valid destination"):
        await policy.authorize("https://odd.example/")


async def test_resolution_failure_is_a_network_error() -> None:
    policy = EgressPolicy(["nowhere.example"], resolver=fixed_resolver({}))
    with pytest.raises(HttpRequestRefused) as info:
        await policy.authorize("https://nowhere.example/")
    assert info.value.code == "network_error"
    assert "nowhere.example" in info.value.message


async def test_resolver_garbage_is_refused() -> None:
    policy = EgressPolicy(["odd.example"], resolver=fixed_resolver({"odd.example": ["127.1"]}))
    with pytest.raises(HttpRequestRefused) as info:
        await policy.authorize("https://odd.example/")
    assert info.value.code == "network_error"


async def test_host_rule_is_checked_before_resolving() -> None:
    resolver = fixed_resolver({"evil.com": ["93.184.215.14"]})
    with pytest.raises(HttpRequestRefused):
        await EgressPolicy(["api.example.com"], resolver=resolver).authorize("https://evil.com/")
    assert resolver.asked == []


async def test_localhost_through_the_system_resolver() -> None:
    with pytest.raises(HttpRequestRefused) as info:
        await EgressPolicy(["http://localhost:8080"]).authorize("http://localhost:8080/")
    assert "loopback" in info.value.message
    allowed = EgressPolicy(["http://localhost:8080"], allow_private=True)
    destination = await allowed.authorize("http://localhost:8080/")
    assert destination.addresses
    assert all(address.is_loopback for address in destination.addresses)


# ----------------------------------------------------------------- properties

# Pieces an attacker would splice around an allowed host name.
_PIECES = st.sampled_from(
    [
        "api.github.com",
        "evil.com",
        "@",
        "\\",
        "%2e",
        "%40",
        ".",
        ":",
        "443",
        "/",
        "?",
        "#",
        "[",
        "]",
        "::1",
        "127.0.0.1",
        " ",
        "\t",
        "*",
        "xn--",
        "ü",
        "。",
        "user:pw",
    ]
)


@settings(max_examples=400, deadline=None, database=None)
@given(st.lists(_PIECES, max_size=8).map("".join))
def test_accepted_urls_are_unambiguous(authority_and_path: str) -> None:
    policy = EgressPolicy(["api.github.com"])
    try:
        target = policy.check_url("https://" + authority_and_path)
    except HttpRequestRefused as error:
        assert error.code == "host_not_allowed"
        return
    # Whatever was accepted is the listed host (or, by Tale's rule, a subdomain of it:
    # "127.0.0.1。api.github.com" is the DNS name 127.0.0.1.api.github.com, whose
    # addresses are checked when it resolves) on the default port, and the normalised
    # URL parses back to the very same target.
    assert target.host == "api.github.com" or target.host.endswith(".api.github.com")
    assert (target.scheme, target.port) == ("https", 443)
    assert parse_url(target.url) == target


# ----------------------------------------------------------------- resolver cache


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_caching_resolver_reuses_answers_within_the_ttl() -> None:
    inner = fixed_resolver({"a.example": ["93.184.215.14"], "b.example": ["93.184.215.15"]})
    clock = FakeClock()
    resolver = CachingResolver(inner, ttl_s=10, clock=clock)
    assert list(await resolver("a.example", 443)) == ["93.184.215.14"]
    clock.now += 9
    assert list(await resolver("a.example", 443)) == ["93.184.215.14"]
    assert inner.asked == ["a.example"]
    clock.now += 2
    await resolver("a.example", 443)
    assert inner.asked == ["a.example", "a.example"]


async def test_caching_resolver_does_not_cache_failures() -> None:
    inner = fixed_resolver({})
    resolver = CachingResolver(inner, clock=FakeClock())
    for _ in range(2):
        with pytest.raises(OSError):
            await resolver("missing.example", 443)
    assert inner.asked == ["missing.example", "missing.example"]


async def test_caching_resolver_evicts_the_oldest_name() -> None:
    inner = fixed_resolver({"a.example": ["192.0.2.1"], "b.example": ["192.0.2.2"]})
    resolver = CachingResolver(inner, max_entries=1, clock=FakeClock())
    await resolver("a.example", 443)
    await resolver("b.example", 443)
    await resolver("a.example", 443)
    assert inner.asked == ["a.example", "b.example", "a.example"]


async def test_policy_checks_cached_answers_every_time() -> None:
    # A cached private answer is refused by a policy that does not allow it, even
    # though another policy accepted it moments before.
    resolver = CachingResolver(fixed_resolver({"db.internal": ["10.0.0.5"]}), clock=FakeClock())
    opened = EgressPolicy(["http://db.internal:5000"], allow_private=True, resolver=resolver)
    closed = EgressPolicy(["http://db.internal:5000"], resolver=resolver)
    assert (await opened.authorize("http://db.internal:5000/")).addresses
    with pytest.raises(HttpRequestRefused):
        await closed.authorize("http://db.internal:5000/")
