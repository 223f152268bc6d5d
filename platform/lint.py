"""Lints of ``bollard validate`` beyond the load rules: mistakes that would fail at run time.

- ``ctx.secrets.get("x")`` with a literal key missing from ``secretBindings`` (it would
  always return ``None``);
- a literal URL whose host ``allowedHosts`` does not allow (every request to it would be
  refused by the egress policy, DESIGN §4).
"""

from __future__ import annotations

import ast
import re

from bollard.platform.packages import CONNECTOR_FILE, IntegrationVersion
from bollard.sandbox.errors import HttpRequestRefused

URL_RE = re.compile(r"^https?://[^/\s?#]+", re.I)


def _literal_url(node: ast.AST) -> str | None:
    """A URL (at least scheme and host) at the start of a literal or an f-string."""
    text: str | None = None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        text = node.value
    elif isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            text = first.value
            # "https://{host}/x" or "https://api." + name: the host is not literal
            rest = text.split("://", 1)[-1]
            if len(node.values) > 1 and not re.search(r"[/?#]", rest):
                return None
    if text is None:
        return None
    m = URL_RE.match(text)
    return m.group(0) if m else None


def _is_secrets_get(call: ast.Call) -> bool:
    f = call.func
    return (
        isinstance(f, ast.Attribute)
        and f.attr == "get"
        and isinstance(f.value, ast.Attribute)
        and f.value.attr == "secrets"
    )


def lint_connector(source: str, secret_bindings: list[str], allowed_hosts: list[str]) -> list[str]:
    """Return lint errors for a connector, each as ``connector.py line N: …``."""
    from bollard.platform.egress import EgressPolicy

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []  # the compile step reports syntax errors with their line
    errors: list[str] = []
    policy = EgressPolicy(allowed_hosts, allow_private=True)
    declared = set(secret_bindings)
    seen_urls: set[tuple[int, str]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and _is_secrets_get(node) and node.args:
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value not in declared:
                errors.append(
                    f"{CONNECTOR_FILE} line {node.lineno}: ctx.secrets.get({arg.value!r}) reads a key that "
                    f"is not in secretBindings ({', '.join(secret_bindings) or 'none declared'}); "
                    "add it to secretBindings in config.json or fix the name"
                )
        if isinstance(node, ast.Constant | ast.JoinedStr):
            url = _literal_url(node)
            if url is None or (node.lineno, url) in seen_urls:
                continue
            seen_urls.add((node.lineno, url))
            try:
                policy.check_url(url + "/")
            except HttpRequestRefused as e:
                errors.append(f"{CONNECTOR_FILE} line {node.lineno}: {url}: {e.message}")
    return errors


def lint_version(version: IntegrationVersion) -> list[str]:
    """Lint errors of a loaded integration (empty for SQL integrations)."""
    source = version.connector_source
    if source is None:
        return []
    m = version.manifest
    return lint_connector(source, list(m.secret_bindings), list(m.allowed_hosts))
