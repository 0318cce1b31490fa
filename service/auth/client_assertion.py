"""Outbound SMART Backend Services client assertion (SMART App Launch 2.2.0, clinical-coding.md §7).

The sync worker authenticates to an EHR's token endpoint with a JWT signed by our private
key. This module only signs (the only `jose` use for outbound auth lives here, as the
architecture keeps `jose` inside `service/auth`); the token request itself is sync's job.

Header: alg RS384 | ES384, typ JWT, kid. Claims: iss = sub = client_id, aud = the token
endpoint URL (not the FHIR base), exp <= 5 minutes ahead, a fresh random jti each time.
"""

from __future__ import annotations

import time
import uuid

from jose import jwt

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SUPPORTED_ALGORITHMS = ("RS384", "ES384")
MAX_LIFETIME_SECONDS = 300


class ClientAssertionError(ValueError):
    """The assertion cannot be made (unsupported algorithm, unreadable key)."""


def sign_client_assertion(
    *,
    client_id: str,
    token_url: str,
    private_key_pem: str,
    key_id: str,
    alg: str = "RS384",
    lifetime_seconds: int = MAX_LIFETIME_SECONDS,
    now: float | None = None,
    jti: str | None = None,
) -> str:
    """A signed authentication JWT for the client-credentials token request."""
    if alg not in SUPPORTED_ALGORITHMS:
        raise ClientAssertionError(f"alg must be one of {', '.join(SUPPORTED_ALGORITHMS)}, not {alg!r}")
    if not client_id or not token_url or not key_id:
        raise ClientAssertionError("client_id, token_url and key_id are required")
    issued = int(now if now is not None else time.time())
    lifetime = max(1, min(int(lifetime_seconds), MAX_LIFETIME_SECONDS))
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url,
        "exp": issued + lifetime,
        "iat": issued,
        "jti": jti or uuid.uuid4().hex,
    }
    try:
        return jwt.encode(claims, private_key_pem, algorithm=alg, headers={"kid": key_id, "typ": "JWT"})
    except Exception as error:  # jose raises JWKError / JWSError for a bad key
        raise ClientAssertionError(f"cannot sign the client assertion: {type(error).__name__}") from None
