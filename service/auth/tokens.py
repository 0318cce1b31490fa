"""Bearer-token validation: `validate_token(token, settings) -> Principal`.

Order of checks (each failure is an `AuthError` 401 with a fixed message, never echoing the
token):

1. size and shape: at most `settings.max_token_bytes`, three base64url parts, JSON header;
2. header: `alg` must be in the allow-list RS256/RS384/ES256/ES384 (so `none`, every HS*, PS*,
   and unknown names are refused *before* any key is looked at); a `crit` header is refused;
3. key: chosen by `kid` from the configured key source (see `keys.py`); the key's type/curve
   (and its JWK `alg`, when present) must fit the header `alg` - an HS256 token "signed" with
   the RSA public key as an HMAC secret therefore fails twice over;
4. signature: python-jose `jwt.decode` with `algorithms=[header alg]` and that single key;
5. claims, with `clock_skew_seconds` leeway on a clock that tests can set (`now=`):
   `exp` required (reject when now >= exp + skew), `nbf` (reject when nbf > now + skew), `iat`
   (reject when iat > now + skew), `iss` equal to the configured issuer, `aud` (string or list)
   containing one of the configured audiences, and `sub` or `client_id` present.

Custom claims read into the `Principal`: `clinic` (tenancy; or a `fhirUser` of the form
`Organization/<id>`), `patient` (SMART launch context: the token is then confined to that
patient's compartment), `roles` (list; unknown roles are ignored), `scope` (space-separated
string; `scp` list accepted as a fallback). Patient-context scopes in a token without a
`patient` claim grant nothing (they are moved to `ScopeSet.ignored`).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from jose import jwk as jose_jwk
from jose import jwt as jose_jwt
from jose.exceptions import JOSEError

from service.auth.errors import AuthError, forbidden, unauthorized
from service.auth.keys import ALLOWED_ALGORITHMS, KeySource, key_matches_alg, key_source_for
from service.auth.scopes import Grant, ScopeSet
from service.auth.settings import AuthSettings

KNOWN_ROLES: frozenset[str] = frozenset({"ehr-system", "clinician", "billing", "admin"})

_VERIFY_SIGNATURE_ONLY = {
    # jose verifies the signature; the claims are checked below against an injectable clock
    "verify_signature": True,
    "verify_aud": False,
    "verify_iat": False,
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iss": False,
    "verify_sub": False,
    "verify_jti": False,
    "verify_at_hash": False,
}


@dataclass(frozen=True)
class Principal:
    """Who is calling, for which clinic and patient, with which roles and scopes."""

    subject: str
    """`sub`, or `client_id` when there is no `sub`."""
    client_id: str | None
    issuer: str
    clinic_id: str | None
    """The clinic (tenant) the token acts for; None means no tenant (see `roles.require_clinic`)."""
    patient_id: str | None
    """SMART launch context: when set, the token is confined to this patient's compartment."""
    roles: frozenset[str]
    scopes: ScopeSet
    expires_at: int
    token_id: str | None = None
    claims: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}), repr=False, compare=False)

    @property
    def confined_to_patient(self) -> bool:
        """True when the token carries a patient launch context: every request it makes must stay
        inside `Patient/<patient_id>`'s compartment, whatever its other scopes say."""
        return self.patient_id is not None

    def has_role(self, role: str) -> bool:
        return role in self.roles

    def grant(self, resource_type: str, interaction: str) -> Grant | None:
        """How the scopes allow `interaction` on `resource_type` (with `patient_id` set when the
        request must be confined to the patient compartment), or None."""
        grant = self.scopes.grant(resource_type, interaction)
        if grant is None:
            return None
        if self.confined_to_patient:
            return Grant(grant.resource_type, grant.interaction, grant.contexts, grant.filters, self.patient_id)
        return grant

    def require(self, resource_type: str, interaction: str) -> Grant:
        """Like `grant`, but raises `AuthError` 403 `insufficient_scope` when not allowed."""
        grant = self.grant(resource_type, interaction)
        if grant is None:
            raise forbidden("insufficient_scope", "The token's scopes do not allow this interaction.")
        return grant


# --------------------------------------------------------------------------- helpers


def _b64url_json(segment: str) -> Any:
    padded = segment + "=" * (-len(segment) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


def _malformed() -> AuthError:
    return unauthorized("malformed_token", "The bearer token is not a well-formed signed JWT.")


def _numeric_date(claims: Mapping[str, Any], name: str, required: bool) -> float | None:
    value = claims.get(name)
    if value is None:
        if required:
            raise unauthorized("missing_claim", f"The token has no '{name}' claim.")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise unauthorized("invalid_claim", f"The token's '{name}' claim is not a NumericDate.")
    return float(value)


def _string_claim(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise unauthorized("invalid_claim", f"The token's '{name}' claim is not a non-empty string.")
    return value


def _clinic_from(claims: Mapping[str, Any]) -> str | None:
    clinic = _string_claim(claims, "clinic")
    if clinic is not None:
        return clinic
    fhir_user = claims.get("fhirUser")
    if isinstance(fhir_user, str):
        tail = fhir_user.rstrip("/").split("/")
        if len(tail) >= 2 and tail[-2] == "Organization" and tail[-1]:
            return tail[-1]
    return None


def _roles_from(claims: Mapping[str, Any]) -> frozenset[str]:
    value = claims.get("roles")
    if value is None:
        return frozenset()
    if isinstance(value, str):
        value = value.split()
    if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
        raise unauthorized("invalid_claim", "The token's 'roles' claim is not a list of strings.")
    return frozenset(value) & KNOWN_ROLES


def _scopes_from(claims: Mapping[str, Any], patient_id: str | None) -> ScopeSet:
    value = claims.get("scope", claims.get("scp"))
    if value is not None and not (
        isinstance(value, str) or (isinstance(value, list) and all(isinstance(s, str) for s in value))
    ):
        raise unauthorized("invalid_claim", "The token's 'scope' claim is not a string.")
    scopes = ScopeSet.parse(value)
    if patient_id is None and "patient" in scopes.contexts:
        scopes = scopes.without_context("patient", "patient-context scope in a token without a 'patient' claim")
    return scopes


# --------------------------------------------------------------------------- validation


def validate_token(
    token: str,
    settings: AuthSettings,
    *,
    keys: KeySource | None = None,
    now: float | None = None,
) -> Principal:
    """Verify a compact-serialized JWT bearer token and return its `Principal`.

    `keys` defaults to the process-wide source for `settings` (`keys.key_source_for`); `now`
    (epoch seconds) defaults to the current time. Raises `AuthError` (401 for any invalid token,
    503 when the keys cannot be obtained).
    """
    if settings.mode == "disabled":
        raise AuthError(503, "auth_disabled", "Token validation is disabled in this deployment.")
    if not isinstance(token, str) or not token or len(token) > settings.max_token_bytes:
        raise _malformed()
    parts = token.split(".")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise _malformed()
    try:
        header = _b64url_json(parts[0])
    except (ValueError, UnicodeError):
        raise _malformed() from None
    if not isinstance(header, dict):
        raise _malformed()

    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
        raise unauthorized("alg_not_allowed", "The token's signing algorithm is not accepted.")
    if "crit" in header:
        raise unauthorized(
            "unsupported_header", "The token uses critical header extensions this server does not support."
        )
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise _malformed()

    key_source = keys if keys is not None else key_source_for(settings)
    public_jwk = key_source.key_for(kid, alg)
    if not key_matches_alg(public_jwk, alg):  # defence in depth: sources already filter
        raise unauthorized("unknown_kid", "The token's signing key is not known to this server.")

    try:
        verifying_key = jose_jwk.construct(dict(public_jwk), alg)
        claims = jose_jwt.decode(token, verifying_key, algorithms=[alg], options=_VERIFY_SIGNATURE_ONLY)
    except JOSEError:
        raise unauthorized("bad_signature", "The token's signature does not verify.") from None
    except (ValueError, TypeError):
        raise _malformed() from None

    return principal_from_claims(claims, settings, now=now)


def check_token_times(claims: Mapping[str, Any], settings: AuthSettings, *, now: float | None = None) -> float:
    """The time-dependent registered claims (exp required; nbf, iat) against `now`, within the
    configured clock skew (RFC 7519 4.1.4-4.1.6); AuthError when the token is not valid now.
    Returns `exp`."""
    current = time.time() if now is None else now
    skew = settings.clock_skew_seconds
    exp = _numeric_date(claims, "exp", required=True)
    assert exp is not None
    if current >= exp + skew:
        raise unauthorized("token_expired", "The token has expired.")
    nbf = _numeric_date(claims, "nbf", required=False)
    if nbf is not None and nbf > current + skew:
        raise unauthorized("token_not_yet_valid", "The token is not valid yet (nbf).")
    iat = _numeric_date(claims, "iat", required=False)
    if iat is not None and iat > current + skew:
        raise unauthorized("token_issued_in_future", "The token's issue time (iat) is in the future.")
    return exp


def principal_from_claims(claims: Mapping[str, Any], settings: AuthSettings, *, now: float | None = None) -> Principal:
    """Check the registered claims of an already signature-verified token; build the `Principal`."""
    exp = check_token_times(claims, settings, now=now)
    if claims.get("iss") != settings.issuer or settings.issuer is None:
        raise unauthorized("wrong_issuer", "The token was not issued by the configured issuer.")
    aud = claims.get("aud")
    audiences = [aud] if isinstance(aud, str) else aud
    if not isinstance(audiences, list) or not all(isinstance(a, str) for a in audiences):
        raise unauthorized("wrong_audience", "The token is not intended for this server (aud).")
    if not set(audiences) & set(settings.audience):
        raise unauthorized("wrong_audience", "The token is not intended for this server (aud).")

    sub = _string_claim(claims, "sub")
    client_id = _string_claim(claims, "client_id")
    subject = sub or client_id
    if subject is None:
        raise unauthorized("missing_claim", "The token has neither a 'sub' nor a 'client_id' claim.")

    patient_id = _string_claim(claims, "patient")
    jti = claims.get("jti")
    return Principal(
        subject=subject,
        client_id=client_id or sub,
        issuer=settings.issuer,
        clinic_id=_clinic_from(claims),
        patient_id=patient_id,
        roles=_roles_from(claims),
        scopes=_scopes_from(claims, patient_id),
        expires_at=int(exp),
        token_id=jti if isinstance(jti, str) else None,
        claims=MappingProxyType(dict(claims)),
    )


def disabled_principal(clinic_id: str | None = None) -> Principal:
    """The caller every request acts as when `AUTH_MODE=disabled` (never in production):
    an admin with `system/*.cruds`."""
    return Principal(
        subject="auth-disabled",
        client_id=None,
        issuer="urn:ketamine-fhir-service:auth-disabled",
        clinic_id=clinic_id,
        patient_id=None,
        roles=KNOWN_ROLES,
        scopes=ScopeSet.parse("system/*.cruds"),
        expires_at=2**31 - 1,
    )
