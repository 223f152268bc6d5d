"""What each auth method asks the user for (DESIGN §7), and what must be set before use.

- ``none``: nothing;
- ``api_key``, ``bearer_token``, ``basic_auth``: the manifest's ``secretBindings``;
- ``oauth2``: the OAuth client's ``clientId`` and ``clientSecret`` (the access and refresh
  tokens come from the authorisation flow, not from the user);
- SQL integrations: the connection fields ``server``, ``port``, ``database``,
  ``username``, ``password`` and TLS options, plus any other secretBindings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bollard.platform.manifest import SQL_CONNECTION_KEYS, Manifest

# Filled in by the OAuth2 flow, never typed by a person.
OAUTH2_TOKEN_KEYS = ("accessToken", "refreshToken")
SECRET_FIELDS = frozenset(
    {"password", "apiKey", "accessToken", "refreshToken", "clientSecret", "token", "secret"}
)
SQL_OPTIONAL = frozenset({"port", "ssl", "sslMode", "sslRootCert", "encrypt", "trustServerCertificate"})
# Keys that say where a connection goes and as whom (DESIGN §5, §7): changing one moves
# the stored secrets' destination, so they are not carried over (issue 9, item 20).
TARGET_KEYS = frozenset(
    {"server", "host", "port", "database", "username", "user", "ssl", "sslMode", "sslRootCert", "encrypt",
     "trustServerCertificate"}
)  # fmt: skip
TARGET_WORDS = ("url", "domain", "host")  # REST: baseUrl, shopDomain, apiHost, …


def is_secret_key(key: str) -> bool:
    """Whether a credential key holds a secret (a password, key, token or secret)."""
    return key in SECRET_FIELDS or key.lower().endswith(("key", "token", "secret", "password"))


def is_target_key(key: str) -> bool:
    """Whether a credential key names the connection's target (:data:`TARGET_KEYS`, or a
    name containing url, domain or host)."""
    return key in TARGET_KEYS or any(word in key.lower() for word in TARGET_WORDS)


def secrets_not_carried(stored: Mapping[str, str], new: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """``(changed, reenter)`` when ``new`` values are laid over ``stored`` ones: the target
    keys whose value changes (``""`` removes one, a change too), and the stored secrets
    that ``new`` does not enter again. When ``changed`` is not empty, those secrets must
    not reach the new target: Test connection reports them missing and a credentials PUT
    is refused (DESIGN §5, §7)."""
    changed = sorted(k for k, v in new.items() if is_target_key(k) and stored.get(k, "") != v)
    if not changed:
        return [], []
    return changed, sorted(k for k in stored if is_secret_key(k) and not is_target_key(k) and k not in new)


def not_carried_message(changed: list[str], reenter: list[str]) -> str:
    """The sentence Test connection and a credentials PUT answer with."""
    return (
        f"the connection target changed ({', '.join(changed)}): stored secrets are not sent to a new target; "
        f"enter {', '.join(reenter)} again together with the change"
    )


def empty_is_value(m: Manifest) -> frozenset[str]:
    """Keys for which ``""`` is a value, not a removal: a SQL connection's ``password``
    (trust, peer or certificate authentication need none). For every other key an empty
    string in ``PUT …/credentials`` unsets it (DESIGN §7)."""
    return frozenset({"password"}) if m.type == "sql" else frozenset()


def required_keys(m: Manifest) -> tuple[str, ...]:
    """Keys the default credential must set before the integration is ``ready``."""
    if m.auth_method == "none" and m.type != "sql":
        return ()
    keys = list(m.secret_bindings)
    if m.type == "sql" and m.sql_connection_config is not None:
        cfg = m.sql_connection_config
        if cfg.engine == "sqlite":
            if "database" not in cfg.options and "database" not in keys:
                keys.append("database")
        else:
            keys += [k for k in ("server", "database") if k not in keys]
    if m.auth_method == "oauth2" and "accessToken" not in keys:
        keys.append("accessToken")
    return tuple(keys)


def credential_fields(m: Manifest) -> list[dict[str, Any]]:
    """The fields a settings form asks for: ``[{key, required, secret, source}]``.

    ``source`` is ``user`` (typed in) or ``oauth2`` (set by the authorisation flow).
    """
    required = set(required_keys(m))
    fields: list[dict[str, Any]] = []

    def add(key: str, *, source: str = "user", req: bool | None = None) -> None:
        if any(f["key"] == key for f in fields):
            return
        secret = is_secret_key(key)
        fields.append(
            {
                "key": key,
                "required": key in required if req is None else req,
                "secret": secret,
                "source": source,
            }
        )

    if m.auth_method == "oauth2":
        add("clientId", req=True)
        add("clientSecret", req=True)
    for key in m.secret_bindings:
        add(key, source="oauth2" if m.auth_method == "oauth2" and key in OAUTH2_TOKEN_KEYS else "user")
    if m.type == "sql" and m.sql_connection_config is not None and m.sql_connection_config.engine != "sqlite":
        for key in SQL_CONNECTION_KEYS:
            add(key, req=key in required and key not in SQL_OPTIONAL)
    elif m.type == "sql":
        add("database", req="database" in required)
    return fields
