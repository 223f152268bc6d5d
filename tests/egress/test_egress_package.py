"""The shape of the egress package: what it exports and what importing it costs.

The manifest loader validates ``allowedHosts`` with :mod:`bollard.platform.egress.hosts`;
that must not import httpx (the package's public names load on first use).
"""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap

import pytest


def run_python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_manifest_validation_does_not_import_httpx() -> None:
    out = run_python(
        """
        import sys
        from bollard.platform.manifest import ManifestError, parse_manifest

        manifest = {
            "title": "T", "description": "d", "type": "rest_api", "authMethod": "none",
            "allowedHosts": ["api.example.com", "*.example.org", "http://localhost:8080"],
            "operations": [{"name": "ping", "description": "p"}],
        }
        parse_manifest(manifest, has_connector=True)
        manifest["allowedHosts"].append("0x7f000001")
        try:
            parse_manifest(manifest, has_connector=True)
        except ManifestError as exc:
            print([issue.path for issue in exc.issues], "httpx" in sys.modules)
        """
    )
    assert out == "['allowedHosts[3]'] False"


def test_package_exports_the_submodule_definitions() -> None:
    from bollard.platform import egress
    from bollard.platform.egress import hosts, policy, sender, urls

    assert egress.send is sender.send and inspect.iscoroutinefunction(egress.send)
    assert egress.make_client is sender.make_client
    assert egress.EgressPolicy is policy.EgressPolicy
    assert egress.parse_url is urls.parse_url
    assert egress.validate_allowed_host_entry is hosts.validate_allowed_host_entry
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = egress.nope


async def test_make_client_returns_the_client_send_requires() -> None:
    from bollard.platform.egress import EgressClient, make_client

    client = make_client()
    try:
        assert isinstance(client, EgressClient)
    finally:
        await client.aclose()
