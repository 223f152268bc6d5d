"""Requests to the provider's token endpoint (RFC 6749 §3.2, §2.3.1, §5), through the egress policy.

Token requests go to the manifest's ``tokenUrl`` only, through the egress sender with an
egress policy naming that origin alone: the address checks apply (no private, loopback or
metadata address unless the operator allows private egress), TLS is verified against the
public CAs plus ``oauth2_ca_bundle``, with a timeout (:data:`TOKEN_TIMEOUT_S`) and a
response size cap (:data:`MAX_TOKEN_RESPONSE_BYTES`). Every failure is a
:class:`TokenEndpointError`; no client secret, code, verifier or token is put into one.
"""

from __future__ import annotations

import base64
import json
import ssl
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode

from bollard.platform.egress.urls import parse_url
from bollard.platform.errors import TokenEndpointError
from bollard.platform.packages import IntegrationVersion
from bollard.platform.redact import redact_text

if TYPE_CHECKING:
    from bollard.platform.egress import EgressClient

TOKEN_TIMEOUT_S = 15.0
"""Wall time of one token endpoint request, redirects included (seconds)."""
MAX_TOKEN_RESPONSE_BYTES = 1024 * 1024
"""Largest token endpoint response accepted (bytes)."""

TOKEN_AUTH_METHODS = ("client_secret_basic", "client_secret_post")


def parse_token_response(
    status: int, content_type: str, body: bytes, secrets_sent: list[str]
) -> dict[str, Any]:
    """The token response (RFC 6749 §5.1) as a dict, or :class:`TokenEndpointError`.

    JSON is the standard; ``application/x-www-form-urlencoded`` is accepted too (some
    providers answer so). An ``error`` member (RFC 6749 §5.2), even in a 200 response,
    raises ``oauth2_error`` with the provider's code and description (truncated, with
    the values sent redacted).
    """
    data: Any
    try:
        if "application/x-www-form-urlencoded" in content_type:
            data = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
        else:
            data = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        data = None
    if not isinstance(data, dict):
        raise TokenEndpointError(
            "bad_response",
            f"the token endpoint answered HTTP {status} without a JSON object; check "
            "oauth2Config.tokenUrl in config.json",
        )
    if "error" in data or not 200 <= status < 300:
        error = str(data.get("error") or f"HTTP {status}")[:80]
        description = str(data.get("error_description") or "")[:300]
        text = redact_text(f"{error}: {description}" if description else error, secrets_sent)
        raise TokenEndpointError(
            "oauth2_error", f"the token endpoint refused the request ({text})", error=error
        )
    if not isinstance(data.get("access_token"), str) or not data["access_token"]:
        raise TokenEndpointError(
            "bad_response", "the token endpoint's answer has no access_token (RFC 6749 §5.1)"
        )
    return data


def token_ssl_context(ca_bundle: Any = None) -> ssl.SSLContext:
    """Public CAs (certifi) plus the PEM file ``ca_bundle`` when given, hostname checked."""
    from bollard.platform.egress.sender import default_ssl_context  # lazy: httpcore

    context = default_ssl_context()
    if ca_bundle is not None:
        context.load_verify_locations(cafile=str(ca_bundle))
    return context


async def token_request(
    client: EgressClient,
    version: IntegrationVersion,
    values: dict[str, str],
    form: dict[str, str],
    *,
    allow_private: bool,
) -> dict[str, Any]:
    """POST ``form`` to the manifest's ``tokenUrl`` with client authentication; the token response.

    ``client``: the pinned egress client (:func:`token_ssl_context`); ``values``: the
    credential values (``clientId``, ``clientSecret``); ``allow_private``: the operator's
    ``allow_private_egress``. Client authentication (RFC 6749 §2.3.1): HTTP Basic with the
    form-encoded id and secret, or both in the body when
    ``connectionConfig.tokenEndpointAuthMethod`` is ``client_secret_post``; a client
    without a secret sends ``client_id`` (public client, PKCE). Raises
    :class:`TokenEndpointError`.
    """
    # lazy: the HTTP client and the sandbox load on first use
    from bollard.platform.egress import EgressPolicy, send
    from bollard.sandbox.errors import HttpRequestRefused
    from bollard.sandbox.protocol import HttpRequest

    cfg = version.manifest.oauth2_config
    assert cfg is not None
    client_id, client_secret = values.get("clientId", ""), values.get("clientSecret", "")
    if not client_id:
        raise TokenEndpointError(
            "bad_request",
            f"no clientId is set; set it with PUT /api/integrations/{version.slug}/credentials",
        )
    method = auth_method(version)
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    body = dict(form)
    if client_secret and method == "client_secret_basic":
        pair = f"{quote(client_id, safe='')}:{quote(client_secret, safe='')}"
        headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
    else:
        body["client_id"] = client_id
        if client_secret:
            body["client_secret"] = client_secret
    sent = [v for v in (client_secret, *form.values()) if len(v) >= 4]
    policy = EgressPolicy([origin_entry(cfg.token_url)], allow_private=allow_private)
    try:
        response = await send(
            client,
            policy,
            HttpRequest("POST", cfg.token_url, headers=headers, body=urlencode(body)),
            max_response_bytes=MAX_TOKEN_RESPONSE_BYTES,
            timeout_s=TOKEN_TIMEOUT_S,
            secrets=sent,
        )
    except HttpRequestRefused as e:
        message = redact_text(e.message, sent)
        if e.code == "host_not_allowed":
            message = (
                "the token endpoint oauth2Config.tokenUrl was refused: "
                f"{message.split('; ')[0].rstrip('.')}. "
                "Token requests to private or local addresses need BOLLARD_ALLOW_PRIVATE_EGRESS=true"
            )
        raise TokenEndpointError(e.code, message) from None
    return parse_token_response(
        response.status, response.headers.get("content-type", ""), response.body, sent
    )


def auth_method(version: IntegrationVersion) -> str:
    """``connectionConfig.tokenEndpointAuthMethod`` when one of :data:`TOKEN_AUTH_METHODS`,
    else ``client_secret_basic`` (the RFC 6749 §2.3.1 default)."""
    cc = version.manifest.connection_config
    method = getattr(cc, "model_extra", None) or {}
    chosen = method.get("tokenEndpointAuthMethod", "client_secret_basic")
    return chosen if chosen in TOKEN_AUTH_METHODS else "client_secret_basic"


def origin_entry(url: str) -> str:
    """The ``allowedHosts``-style entry naming exactly the origin of ``url``.

    Raises :class:`TokenEndpointError` ``host_not_allowed`` when ``url`` does not parse.
    """

    try:
        target = parse_url(url)
    except ValueError as e:
        raise TokenEndpointError(
            "host_not_allowed", f"oauth2Config.tokenUrl is not a usable URL: {e}"
        ) from None
    return (
        target.netloc
        if (target.scheme, target.port) == ("https", 443)
        else f"{target.scheme}://{target.netloc}"
    )
