"""Lints beyond the load rules: mistakes that would fail at run time, and leaked secrets.

The package loader runs them on every load (folder, upload, ``bollard validate``), so the
server and ``validate`` never disagree: the server keeps every lint as a warning on the
loaded version (the integration still loads and the detail lists it), ``validate``
reports each with the severity below.

Errors in ``validate``:
- ``ctx.secrets.get("x")`` with a literal key missing from ``secretBindings`` (it would
  always return ``None``);
- a literal URL whose host ``allowedHosts`` does not allow (every request to it would be
  refused by the egress policy, DESIGN §4).

Warnings:
- a hard-coded credential in ``connector.py`` or ``config.json``: a GitHub (``ghp_…``,
  ``github_pat_…``), OpenAI/Anthropic (``sk-…``), Slack (``xox[abpr]-…``) or AWS
  (``AKIA…``) key, or a long literal given to a name like token / key / secret / password;
- a parameter both ``required`` and with a ``default`` (the default never applies,
  DESIGN §2);
- a ``pattern`` (or ``patternProperties`` key) with nested quantifiers, like ``(x+)+``:
  RE2 runs it in linear time, but it is the shape of catastrophic backtracking in every
  other engine that may read the schema (issue 9, item 18).

No message repeats the secret it found.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from bollard.sandbox.errors import HttpRequestRefused

if TYPE_CHECKING:
    from bollard.platform.manifest import Manifest

CONNECTOR = "connector.py"
JS_CONNECTORS = ("connector.ts", "connector.js")
CONFIG = "config.json"
URL_RE = re.compile(r"^https?://[^/\s?#]+", re.I)

# Well-known credential formats: (pattern, what it is). Each needs enough characters after
# the prefix that ordinary words and placeholders ("sk-...") do not match.
TOKEN_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(?<![A-Za-z0-9_])gh[pousr]_[A-Za-z0-9]{30,}"), "a GitHub token (ghp_…)"),
    (re.compile(r"(?<![A-Za-z0-9_])github_pat_[A-Za-z0-9_]{30,}"), "a GitHub token (github_pat_…)"),
    (re.compile(r"(?<![A-Za-z0-9_-])sk-[A-Za-z0-9_-]{20,}"), "an API secret key (sk-…)"),
    (re.compile(r"(?<![A-Za-z0-9_])xox[abpr]-[A-Za-z0-9-]{10,}"), "a Slack token (xox…-)"),
    (re.compile(r"(?<![A-Za-z0-9])AKIA[0-9A-Z]{16}(?![0-9A-Z])"), "an AWS access key id (AKIA…)"),
]
# The last word of a name a credential is given to (apiKey, API_KEY, client_secret, …).
SECRET_WORDS = {"token", "secret", "password", "passwd", "pwd", "key", "apikey"}
# A literal that looks like a credential: long, no spaces, letters and digits mixed.
SECRET_VALUE_RE = re.compile(r"^(?=.*[A-Za-z])(?=.*[0-9])[A-Za-z0-9_\-+/=.:~]{16,}$")
FIX = "store it as a credential (a secretBindings key, read with ctx.secrets.get) instead"


@dataclass(frozen=True)
class Lint:
    """One finding. ``severity`` is what ``bollard validate`` reports; the server shows
    every lint as a warning."""

    message: str
    severity: Literal["error", "warning"] = "warning"

    def __str__(self) -> str:
        return self.message


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


def _looks_secret(name: str, value: object) -> bool:
    """``name`` ends in a credential word (camelCase, snake_case or kebab-case) and
    ``value`` looks like a key (not a URL, not prose)."""
    words = re.split(r"[^a-z0-9]+", re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name).lower())
    return (
        isinstance(value, str)
        and words[-1] in SECRET_WORDS
        and bool(SECRET_VALUE_RE.match(value))
        and "://" not in value
    )


def _named_literals(tree: ast.AST) -> Iterator[tuple[int, str, object]]:
    """(line, name, literal) for ``name = "…"``, ``obj.name = "…"``, ``{"name": "…"}``
    and ``f(name="…")``."""
    for node in ast.walk(tree):
        pairs: list[tuple[ast.AST, ast.AST | None]] = []
        if isinstance(node, ast.Assign):
            pairs = [(t, node.value) for t in node.targets]
        elif isinstance(node, ast.AnnAssign):
            pairs = [(node.target, node.value)]
        elif isinstance(node, ast.Dict):
            pairs = [(k, v) for k, v in zip(node.keys, node.values, strict=True) if k is not None]
        elif isinstance(node, ast.Call):
            for kw in node.keywords:
                if kw.arg and isinstance(kw.value, ast.Constant):
                    yield kw.value.lineno, kw.arg, kw.value.value
        for target, value in pairs:
            if not isinstance(value, ast.Constant):
                continue
            if isinstance(target, ast.Name):
                yield value.lineno, target.id, value.value
            elif isinstance(target, ast.Attribute):
                yield value.lineno, target.attr, value.value
            elif isinstance(target, ast.Constant) and isinstance(target.value, str):
                yield value.lineno, target.value, value.value


def credential_lints_source(source: str, file: str = CONNECTOR) -> list[Lint]:
    """Hard-coded credentials in connector source, each as ``connector.py line N: …``."""
    out: list[Lint] = []
    flagged: set[int] = set()
    for lineno, line in enumerate(source.splitlines(), 1):
        for pattern, what in TOKEN_PATTERNS:
            if pattern.search(line):
                out.append(Lint(f"{file} line {lineno}: looks like a hard-coded credential, {what}; {FIX}"))
                flagged.add(lineno)
                break
    if not file.endswith(".py"):
        return out  # TS/JS: the well-known formats above (no Python AST to walk)
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return out
    for lineno, name, value in _named_literals(tree):
        if lineno not in flagged and _looks_secret(name, value):
            flagged.add(lineno)
            out.append(
                Lint(f"{file} line {lineno}: {name} is given a literal that looks like a credential; {FIX}")
            )
    return sorted(out, key=lambda lint: int(lint.message.split(" line ", 1)[1].split(":", 1)[0]))


def _walk_json(value: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """(path, key, value) for every object member, depth first."""
    if isinstance(value, dict):
        for k, v in value.items():
            sub = f"{path}.{k}" if path else str(k)
            yield sub, str(k), v
            yield from _walk_json(v, sub)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            sub = f"{path}[{i}]"
            yield sub, "", v
            yield from _walk_json(v, sub)


def credential_lints_config(data: Any) -> list[Lint]:
    """Hard-coded credentials among the string values of a decoded ``config.json``."""
    out: list[Lint] = []
    for path, key, value in _walk_json(data, ""):
        if not isinstance(value, str):
            continue
        what = next((w for p, w in TOKEN_PATTERNS if p.search(value)), None)
        if what is not None:
            out.append(Lint(f"{CONFIG}: {path}: looks like a hard-coded credential, {what}; {FIX}"))
        elif key and _looks_secret(key, value):
            out.append(Lint(f"{CONFIG}: {path}: looks like a hard-coded credential; {FIX}"))
    return out


def _required_with_default(schema: Any, path: str) -> Iterator[str]:
    if not isinstance(schema, dict):
        return
    props = schema.get("properties")
    if not isinstance(props, dict):
        return
    required = schema.get("required")
    if not isinstance(required, list):
        required = []
    for name, prop in props.items():
        if not isinstance(prop, dict):
            continue
        if name in required and "default" in prop:
            yield f"{path}.properties.{name}"
        yield from _required_with_default(prop, f"{path}.properties.{name}")


def manifest_lints(manifest: Manifest) -> list[Lint]:
    """A parameter both ``required`` and with a ``default`` (DESIGN §2), and patterns
    with nested quantifiers: warnings."""
    from bollard.platform.patterns import nested_quantifier, schema_patterns

    out: list[Lint] = []
    for group, ops in (("operations", manifest.operations), ("sqlOperations", manifest.sql_operations)):
        for i, op in enumerate(ops):
            for sub, pattern in schema_patterns(op.parameters_schema, [f"{group}[{i}]", "parametersSchema"]):
                if nested_quantifier(pattern):
                    out.append(
                        Lint(
                            f"{CONFIG}: {sub}: pattern {pattern[:120]!r} repeats a group that itself "
                            "repeats (a nested quantifier, like (x+)+): backtracking engines take "
                            "exponential time on it; write it with one quantifier (e.g. ^[a-z0-9]+$)"
                        )
                    )
            for path in _required_with_default(op.parameters_schema, f"{group}[{i}].parametersSchema"):
                out.append(
                    Lint(
                        f"{CONFIG}: {path}: is required and has a default, so the default never "
                        "applies; remove it from required or drop the default"
                    )
                )
    return out


def lint_connector(source: str, secret_bindings: list[str], allowed_hosts: list[str]) -> list[str]:
    """Errors for a connector, each as ``connector.py line N: …``: secrets not declared and
    literal URLs ``allowedHosts`` refuses."""
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
                    f"{CONNECTOR} line {node.lineno}: ctx.secrets.get({arg.value!r}) reads a key that "
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
                errors.append(f"{CONNECTOR} line {node.lineno}: {url}: {e.message}")
    return errors


def lint_js_connector(source: str, filename: str, manifest: Manifest) -> list[Lint]:
    """The lints of a Tale ``connector.ts``/``.js``: the same errors as for Python
    (undeclared ``secrets.get`` keys, literal URLs outside ``allowedHosts``) and, as a
    warning, Tale's ``connector.operations`` array naming operations the manifest does not
    declare or missing ones it does (Tale checks the two against each other)."""
    from bollard.platform.egress import EgressPolicy
    from bollard.sandbox.errors import ConnectorCompileError
    from bollard.sandbox.js.source import check_source

    try:
        checked = check_source(source, filename)
    except ConnectorCompileError:
        return []  # the load step reports these with their lines
    out: list[Lint] = []
    declared = list(manifest.secret_bindings)
    config = manifest.connection_config
    variables = set((config.model_extra or {}) if config is not None else {})
    for line, key in checked.secret_keys:
        if key not in declared and key not in variables:
            out.append(
                Lint(
                    f"{filename} line {line}: secrets.get({key!r}) reads a key that is not in "
                    f"secretBindings ({', '.join(declared) or 'none declared'}); add it to "
                    "secretBindings in config.json or fix the name",
                    "error",
                )
            )
    policy = EgressPolicy(list(manifest.allowed_hosts), allow_private=True)
    for line, url in dict.fromkeys(checked.urls):
        try:
            policy.check_url(url + "/")
        except HttpRequestRefused as e:
            out.append(Lint(f"{filename} line {line}: {url}: {e.message}", "error"))
    if checked.operations is not None:
        names = {op.name for op in manifest.operations}
        listed = set(checked.operations)
        extra = sorted(listed - names)
        missing = sorted(names - listed)
        if extra or missing:
            parts = []
            if extra:
                parts.append(f"lists {', '.join(extra)}, which config.json does not declare")
            if missing:
                parts.append(f"leaves out {', '.join(missing)}, which config.json declares")
            out.append(
                Lint(
                    f"{filename} line {checked.operations_line}: connector.operations "
                    + " and ".join(parts)
                    + "; keep the two lists the same"
                )
            )
    return out


def lint_package(manifest: Manifest, files: dict[str, bytes]) -> tuple[Lint, ...]:
    """Every lint of a package whose manifest loaded; ``files`` as in
    :func:`bollard.platform.packages.build_version` (valid UTF-8 by then)."""
    out: list[Lint] = []
    raw = files.get(CONNECTOR)
    if raw is not None:
        source = raw.decode("utf-8")
        out += [
            Lint(e, "error")
            for e in lint_connector(source, list(manifest.secret_bindings), list(manifest.allowed_hosts))
        ]
        out += credential_lints_source(source)
    for name in JS_CONNECTORS:
        if name in files:
            source = files[name].decode("utf-8")
            out += lint_js_connector(source, name, manifest)
            out += credential_lints_source(source, name)
    out += manifest_lints(manifest)
    out += credential_lints_config(json.loads(files[CONFIG].decode("utf-8-sig")))
    return tuple(out)
