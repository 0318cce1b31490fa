"""`validate_token`: hostile tokens are refused with a 401 and a stable code; good ones pass.

Every token is really signed (python-jose / hmac) and really verified; the clock is frozen at
`NOW` through the `now=` argument.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from service.auth.errors import AuthError
from service.auth.keys import StaticJwks
from service.auth.settings import AuthSettings
from service.auth.tokens import Principal, validate_token
from tests.auth.conftest import AUDIENCE, DROP, ISSUER, NOW, SigningKey, base_claims, sign


def b64url(data: bytes | dict[str, Any]) -> str:
    if isinstance(data, dict):
        data = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segments(token: str) -> list[str]:
    return token.split(".")


def with_payload(token: str, claims: dict[str, Any]) -> str:
    """Replace the payload, keep header and signature (tampering)."""
    header, _, signature = segments(token)
    return ".".join([header, b64url(claims), signature])


def hs_token(secret: bytes, claims: dict[str, Any], alg: str = "HS256", kid: str = "rsa-1") -> str:
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
    signing_input = f"{b64url({'alg': alg, 'typ': 'JWT', 'kid': kid})}.{b64url(claims)}"
    signature = hmac.new(secret, signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64url(signature)}"


def unsigned_token(alg: str, claims: dict[str, Any], kid: str | None = "rsa-1") -> str:
    header: dict[str, Any] = {"alg": alg, "typ": "JWT"}
    if kid:
        header["kid"] = kid
    return f"{b64url(header)}.{b64url(claims)}."


@pytest.fixture
def keys(jwks: dict[str, Any]) -> StaticJwks:
    return StaticJwks(jwks)


@pytest.fixture
def validate(settings: AuthSettings, keys: StaticJwks) -> Callable[..., Principal]:
    def run(token: str, *, at: float = NOW, with_settings: AuthSettings | None = None) -> Principal:
        return validate_token(token, with_settings or settings, keys=keys, now=at)

    return run


# --------------------------------------------------------------------------- hostile tokens


@dataclass(frozen=True)
class Keys:
    rsa: SigningKey  # trusted, kid rsa-1
    ec384: SigningKey  # trusted, kid ec-384
    ec256: SigningKey  # trusted, kid ec-256
    attacker: SigningKey  # untrusted RSA key using the kid rsa-1


HostileFactory = Callable[[Keys], str]

HOSTILE: list[tuple[str, HostileFactory, str]] = [
    ("expired", lambda k: sign(k.rsa, base_claims(exp=NOW - 3600, iat=NOW - 7200, nbf=DROP)), "token_expired"),
    ("not yet valid (nbf)", lambda k: sign(k.rsa, base_claims(nbf=NOW + 3600)), "token_not_yet_valid"),
    (
        "issued in the future (iat)",
        lambda k: sign(k.rsa, base_claims(iat=NOW + 3600, nbf=DROP)),
        "token_issued_in_future",
    ),
    ("wrong issuer", lambda k: sign(k.rsa, base_claims(iss="https://evil.example.net/")), "wrong_issuer"),
    ("missing issuer", lambda k: sign(k.rsa, base_claims(iss=DROP)), "wrong_issuer"),
    ("wrong audience", lambda k: sign(k.rsa, base_claims(aud="https://other.example.org/fhir")), "wrong_audience"),
    (
        "audience list without ours",
        lambda k: sign(k.rsa, base_claims(aud=["https://a.example", "https://b.example"])),
        "wrong_audience",
    ),
    ("missing audience", lambda k: sign(k.rsa, base_claims(aud=DROP)), "wrong_audience"),
    ("missing exp", lambda k: sign(k.rsa, base_claims(exp=DROP)), "missing_claim"),
    ("exp not a number", lambda k: sign(k.rsa, base_claims(exp=str(NOW + 300))), "invalid_claim"),
    ("neither sub nor client_id", lambda k: sign(k.rsa, base_claims(sub=DROP, client_id=DROP)), "missing_claim"),
    ("alg none", lambda k: unsigned_token("none", base_claims()), "alg_not_allowed"),
    ("alg None (case variant)", lambda k: unsigned_token("None", base_claims()), "alg_not_allowed"),
    ("alg none without kid", lambda k: unsigned_token("none", base_claims(), kid=None), "alg_not_allowed"),
    (
        "HS256 keyed with the public key PEM",
        lambda k: hs_token(k.rsa.public_pem.encode(), base_claims()),
        "alg_not_allowed",
    ),
    (
        "HS384 keyed with the public key PEM",
        lambda k: hs_token(k.rsa.public_pem.encode(), base_claims(), "HS384"),
        "alg_not_allowed",
    ),
    (
        "HS512 keyed with the JWK modulus",
        lambda k: hs_token(k.rsa.public_jwk["n"].encode(), base_claims(), "HS512"),
        "alg_not_allowed",
    ),
    (
        "PS256 (not on the allow-list)",
        lambda k: f"{b64url({'alg': 'PS256', 'kid': 'rsa-1'})}.{b64url(base_claims())}.{b64url(b'x' * 256)}",
        "alg_not_allowed",
    ),
    (
        "unknown algorithm",
        lambda k: f"{b64url({'alg': 'RS1024', 'kid': 'rsa-1'})}.{b64url(base_claims())}.{b64url(b'x')}",
        "alg_not_allowed",
    ),
    (
        "no alg header",
        lambda k: f"{b64url({'kid': 'rsa-1'})}.{b64url(base_claims())}.{b64url(b'x')}",
        "alg_not_allowed",
    ),
    ("unknown kid", lambda k: sign(k.rsa, base_claims(), headers={"kid": "not-a-known-kid"}), "unknown_kid"),
    (
        "tampered payload",
        lambda k: with_payload(sign(k.rsa, base_claims()), base_claims(roles=["admin"], scope="system/*.cruds")),
        "bad_signature",
    ),
    ("signature stripped", lambda k: ".".join(segments(sign(k.rsa, base_claims()))[:2]) + ".", "bad_signature"),
    ("RS256 from a different key, same kid", lambda k: sign(k.attacker, base_claims()), "bad_signature"),
    (
        "attacker key offered in a jwk header",
        lambda k: sign(k.attacker, base_claims(), headers={"jwk": k.attacker.public_jwk}),
        "bad_signature",
    ),
    (
        "attacker JWKS offered by jku",
        lambda k: sign(k.attacker, base_claims(), headers={"jku": "https://evil.example.net/jwks"}),
        "bad_signature",
    ),
    (
        "ES384 header pointing at the RSA key",
        lambda k: sign(k.ec384, base_claims(), headers={"kid": "rsa-1"}),
        "unknown_kid",
    ),
    (
        "ES256 signature under the P-384 key's kid",
        lambda k: sign(k.ec256, base_claims(), headers={"kid": "ec-384"}),
        "unknown_kid",
    ),
    (
        "critical header extension",
        lambda k: sign(k.rsa, base_claims(), headers={"crit": ["exp-ext"], "exp-ext": 1}),
        "unsupported_header",
    ),
    ("not a JWT", lambda k: "definitely-not-a-jwt", "malformed_token"),
    ("header not JSON", lambda k: "bm90LWpzb24." + b64url(base_claims()) + ".c2ln", "malformed_token"),
    ("JWE-shaped (5 parts)", lambda k: "a.b.c.d.e", "malformed_token"),
    ("oversized token", lambda k: sign(k.rsa, base_claims(padding="x" * 20_000)), "malformed_token"),
]


@pytest.mark.parametrize(("case", "factory", "code"), HOSTILE, ids=[case for case, _, _ in HOSTILE])
def test_hostile_token_is_refused_with_401(
    case: str,
    factory: HostileFactory,
    code: str,
    validate: Callable[..., Principal],
    rsa_key: SigningKey,
    ec384_key: SigningKey,
    attacker_rsa_key: SigningKey,
    ec256_key: SigningKey,
) -> None:
    token = factory(Keys(rsa_key, ec384_key, ec256_key, attacker_rsa_key))
    with pytest.raises(AuthError) as caught:
        validate(token)
    error = caught.value
    assert (error.status, error.code) == (401, code), case
    # the message never echoes token contents
    rendered = f"{error} {error!r} {error.message}"
    for part in token.split("."):
        if len(part) > 8:
            assert part not in rendered
    for leaked in ("evil.example", "other.example", "not-a-known-kid", "ehr-client-7", "clinic-north"):
        assert leaked not in rendered


def test_hmac_confusion_is_refused_even_if_the_key_source_would_hand_out_the_key(
    settings: AuthSettings, rsa_key: SigningKey
) -> None:
    """Defence in depth: a JWKS containing a symmetric (`oct`) key never yields it."""
    secret = rsa_key.public_pem.encode()
    oct_jwk = {"kty": "oct", "kid": "rsa-1", "k": b64url(secret), "alg": "HS256"}
    keys = StaticJwks({"keys": [oct_jwk]})
    with pytest.raises(AuthError) as caught:
        validate_token(hs_token(secret, base_claims()), settings, keys=keys, now=NOW)
    assert caught.value.status == 401


# --------------------------------------------------------------------------- good tokens


@pytest.mark.parametrize("key_fixture", ["rsa_key", "ec384_key", "ec256_key"])
def test_valid_tokens_are_accepted(
    key_fixture: str, request: pytest.FixtureRequest, validate: Callable[..., Principal]
) -> None:
    key: SigningKey = request.getfixturevalue(key_fixture)
    principal = validate(sign(key, base_claims()))
    assert principal.subject == "ehr-client-7"
    assert principal.client_id == "ehr-client-7"
    assert principal.issuer == ISSUER
    assert principal.clinic_id == "clinic-north"
    assert principal.roles == {"ehr-system"}
    assert principal.expires_at == NOW + 300
    assert principal.token_id == "3f0c2a1e-8d0b-4c55-9d7e-6c3b1f0a9e11"
    assert principal.scopes.allows("Observation", "search")
    assert not principal.scopes.allows("Observation", "create")
    assert not principal.confined_to_patient


def test_rs384_token_is_accepted_and_rs256_too(validate: Callable[..., Principal], rsa_key: SigningKey) -> None:
    assert validate(sign(rsa_key, base_claims(), alg="RS384")).subject == "ehr-client-7"
    assert validate(sign(rsa_key, base_claims(), alg="RS256")).subject == "ehr-client-7"


def test_audience_list_containing_ours_is_accepted(validate: Callable[..., Principal], rsa_key: SigningKey) -> None:
    principal = validate(sign(rsa_key, base_claims(aud=["https://elsewhere.example", AUDIENCE])))
    assert principal.subject == "ehr-client-7"


def test_any_configured_audience_is_accepted(settings: AuthSettings, keys: StaticJwks, rsa_key: SigningKey) -> None:
    two = settings.model_copy(update={"audience": (AUDIENCE, "https://fhir-2.example.org/fhir")})
    token = sign(rsa_key, base_claims(aud="https://fhir-2.example.org/fhir"))
    assert validate_token(token, two, keys=keys, now=NOW).subject == "ehr-client-7"


def test_client_id_alone_identifies_the_caller(validate: Callable[..., Principal], rsa_key: SigningKey) -> None:
    principal = validate(sign(rsa_key, base_claims(sub=DROP, client_id="backend-9")))
    assert (principal.subject, principal.client_id) == ("backend-9", "backend-9")


def test_token_without_kid_uses_the_only_fitting_key(validate: Callable[..., Principal], ec384_key: SigningKey) -> None:
    from jose import jwt as jose_jwt

    token = jose_jwt.encode(base_claims(), ec384_key.private_pem, algorithm="ES384")
    assert validate(token).subject == "ehr-client-7"


def test_token_without_kid_is_refused_when_several_keys_fit(
    settings: AuthSettings, rsa_key: SigningKey, rsa_key_2: SigningKey
) -> None:
    from jose import jwt as jose_jwt

    keys = StaticJwks({"keys": [rsa_key.public_jwk, rsa_key_2.public_jwk]})
    token = jose_jwt.encode(base_claims(), rsa_key.private_pem, algorithm="RS384")
    with pytest.raises(AuthError) as caught:
        validate_token(token, settings, keys=keys, now=NOW)
    assert caught.value.code == "unknown_kid"


def test_fhir_user_organization_gives_the_clinic(validate: Callable[..., Principal], rsa_key: SigningKey) -> None:
    principal = validate(
        sign(rsa_key, base_claims(clinic=DROP, fhirUser="https://fhir.example.org/fhir/Organization/clinic-south"))
    )
    assert principal.clinic_id == "clinic-south"


def test_unknown_roles_are_dropped(validate: Callable[..., Principal], rsa_key: SigningKey) -> None:
    principal = validate(sign(rsa_key, base_claims(roles=["clinician", "superuser"])))
    assert principal.roles == {"clinician"}


def test_patient_token_is_confined(validate: Callable[..., Principal], rsa_key: SigningKey) -> None:
    principal = validate(sign(rsa_key, base_claims(scope="patient/*.rs", patient="pat-123")))
    assert principal.patient_id == "pat-123"
    assert principal.confined_to_patient
    grant = principal.require("Observation", "search")
    assert grant.patient_id == "pat-123"
    assert grant.patient_only
    with pytest.raises(AuthError) as caught:
        principal.require("Observation", "create")
    assert (caught.value.status, caught.value.code) == (403, "insufficient_scope")


def test_patient_scopes_without_patient_claim_grant_nothing(
    validate: Callable[..., Principal], rsa_key: SigningKey
) -> None:
    principal = validate(sign(rsa_key, base_claims(scope="patient/*.rs")))
    assert not principal.scopes.allows("Observation", "read")
    assert [ignored.scope for ignored in principal.scopes.ignored] == ["patient/*.rs"]


# --------------------------------------------------------------------------- clock skew


@pytest.mark.parametrize(
    ("claims", "accepted"),
    [
        ({"exp": NOW - 59}, True),  # expired 59 s ago: within the 60 s skew
        ({"exp": NOW - 60}, False),  # now >= exp + skew
        ({"nbf": NOW + 60}, True),
        ({"nbf": NOW + 61}, False),
        ({"iat": NOW + 60}, True),
        ({"iat": NOW + 61}, False),
    ],
    ids=["exp-59s", "exp-60s", "nbf+60s", "nbf+61s", "iat+60s", "iat+61s"],
)
def test_default_clock_skew_is_60_seconds(
    claims: dict[str, int], accepted: bool, validate: Callable[..., Principal], rsa_key: SigningKey
) -> None:
    token = sign(rsa_key, base_claims(**({"iat": DROP, "nbf": DROP} | claims)))
    if accepted:
        assert validate(token).subject == "ehr-client-7"
    else:
        with pytest.raises(AuthError) as caught:
            validate(token)
        assert caught.value.status == 401


def test_clock_skew_is_configurable(settings: AuthSettings, keys: StaticJwks, rsa_key: SigningKey) -> None:
    strict = settings.model_copy(update={"clock_skew_seconds": 0})
    assert validate_token(sign(rsa_key, base_claims(exp=NOW + 1)), strict, keys=keys, now=NOW)
    with pytest.raises(AuthError):
        validate_token(sign(rsa_key, base_claims(exp=NOW)), strict, keys=keys, now=NOW)


def test_real_clock_is_used_by_default(settings: AuthSettings, keys: StaticJwks, rsa_key: SigningKey) -> None:
    # tokens dated around the frozen NOW (2027) are not valid on the real clock *and* vice versa
    import time

    now = int(time.time())
    fresh = sign(rsa_key, base_claims(iat=now, nbf=now, exp=now + 300))
    assert validate_token(fresh, settings, keys=keys).subject == "ehr-client-7"
    stale = sign(rsa_key, base_claims(iat=now - 7200, nbf=now - 7200, exp=now - 3600))
    with pytest.raises(AuthError):
        validate_token(stale, settings, keys=keys)
