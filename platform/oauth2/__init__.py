"""OAuth2 for integrations: the authorization-code flow with PKCE, and token refresh.

DESIGN §7: "OAuth2 uses the authorization-code flow with PKCE and a signed, expiring
``state``; tokens refresh before expiry under a lock and the new tokens are saved."

The flow (RFC 6749 §4.1, RFC 7636):

1. An admin calls ``GET /api/integrations/{slug}/oauth2/authorize``.
   :meth:`OAuth2Service.start_authorization` makes a PKCE verifier (kept server-side,
   encrypted in the credential store under :data:`PENDING`, never in a URL), a signed
   ``state`` (slug, credential id, nonce, expiry; HMAC-SHA256 with a key derived from
   the credential encryption key) and the provider's authorization URL carrying
   ``client_id``, ``redirect_uri``, the manifest's scopes and the S256 challenge.
2. The provider sends the browser to ``GET /api/integrations/oauth2/callback``.
   :meth:`OAuth2Service.complete_authorization` checks the signature and the expiry,
   consumes the pending record (an atomic delete: a state works once, across replicas
   too), exchanges the code with the verifier at ``tokenUrl`` and stores
   ``accessToken``, ``refreshToken``, ``expiresAt`` (epoch seconds), ``tokenType`` and
   ``scope`` in the credential.
3. Every execution asks :meth:`OAuth2Service.fresh_values` for the values; an access
   token within :data:`REFRESH_MARGIN_S` of expiry is refreshed (RFC 6749 §6) under a
   per-(integration, credential) lock, once however many calls wait for it. A refresh
   answered ``invalid_grant`` (revoked or expired grant) removes the tokens, records a
   ``reauthorize`` marker and raises ``needs_credentials`` saying how to authorise again.

Token requests go to the manifest's ``tokenUrl`` only, through the egress sender with an
egress policy naming that origin alone (see :mod:`.token_endpoint`). No token, client
secret, code or verifier is ever logged or put into an error message.

Modules: :mod:`.state` (the signed single-use state), :mod:`.token_endpoint` (requests to
the provider's token endpoint), :mod:`.values` (token responses as credential values),
:mod:`.service` (:class:`OAuth2Service`). Every public name is re-exported here.
"""

from bollard.platform.oauth2.service import (
    CALLBACK_PATH,
    PENDING,
    REFRESH_MARGIN_S,
    Authorization,
    Authorized,
    OAuth2Service,
)
from bollard.platform.oauth2.state import StateClaims, authorize_path, sign_state, state_key, verify_state
from bollard.platform.oauth2.token_endpoint import (
    MAX_TOKEN_RESPONSE_BYTES,
    TOKEN_AUTH_METHODS,
    TOKEN_TIMEOUT_S,
    parse_token_response,
    token_request,
    token_ssl_context,
)
from bollard.platform.oauth2.values import INTERNAL_KEYS, expires_at, public_values, token_values

__all__ = [
    "CALLBACK_PATH",
    "INTERNAL_KEYS",
    "MAX_TOKEN_RESPONSE_BYTES",
    "PENDING",
    "REFRESH_MARGIN_S",
    "TOKEN_AUTH_METHODS",
    "TOKEN_TIMEOUT_S",
    "Authorization",
    "Authorized",
    "OAuth2Service",
    "StateClaims",
    "authorize_path",
    "expires_at",
    "parse_token_response",
    "public_values",
    "sign_state",
    "state_key",
    "token_request",
    "token_ssl_context",
    "token_values",
    "verify_state",
]
