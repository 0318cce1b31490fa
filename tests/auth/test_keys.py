"""Key sources: JWKS from a real local HTTP server (caching, rotation, refetch limits,
outages), from a file, and the dev key pair on disk."""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from service.auth.errors import AuthError
from service.auth.keys import (
    DEV_JWKS_FILE,
    DEV_PRIVATE_KEY_FILE,
    FileJwksSource,
    StaticJwks,
    UrlJwksSource,
    ensure_dev_keypair,
    key_source_for,
    parse_jwks,
)
from service.auth.settings import AuthSettings
from service.auth.tokens import validate_token
from tests.auth.conftest import NOW, FakeClock, JwksServer, SigningKey, base_claims, sign


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def url_source(jwks_server: JwksServer, clock: FakeClock) -> Iterator[UrlJwksSource]:
    source = UrlJwksSource(jwks_server.url, ttl_seconds=300, min_refetch_seconds=30, clock=clock)
    yield source
    source.close()


def test_url_source_fetches_once_and_caches(
    url_source: UrlJwksSource,
    jwks_server: JwksServer,
    settings: AuthSettings,
    rsa_key: SigningKey,
    ec384_key: SigningKey,
) -> None:
    assert jwks_server.requests == 0  # lazy: nothing fetched before the first token
    validate_token(sign(rsa_key, base_claims()), settings, keys=url_source, now=NOW)
    assert jwks_server.requests == 1
    validate_token(sign(rsa_key, base_claims()), settings, keys=url_source, now=NOW)
    validate_token(sign(ec384_key, base_claims()), settings, keys=url_source, now=NOW)
    assert jwks_server.requests == 1  # second and third validations made no request


def test_new_kid_triggers_exactly_one_refetch(
    url_source: UrlJwksSource,
    jwks_server: JwksServer,
    clock: FakeClock,
    settings: AuthSettings,
    rsa_key: SigningKey,
    rsa_key_2: SigningKey,
) -> None:
    validate_token(sign(rsa_key, base_claims()), settings, keys=url_source, now=NOW)
    assert jwks_server.requests == 1
    # the IdP rotates: publishes rsa-2 and drops rsa-1
    jwks_server.document = {"keys": [rsa_key_2.public_jwk]}
    clock.advance(31)  # past the minimum refetch interval, well within the TTL
    principal = validate_token(sign(rsa_key_2, base_claims()), settings, keys=url_source, now=NOW)
    assert principal.subject == "ehr-client-7"
    assert jwks_server.requests == 2
    validate_token(sign(rsa_key_2, base_claims()), settings, keys=url_source, now=NOW)
    assert jwks_server.requests == 2  # the new key is cached now
    # the retired key is gone from the cache as well
    with pytest.raises(AuthError) as caught:
        validate_token(sign(rsa_key, base_claims()), settings, keys=url_source, now=NOW)
    assert caught.value.code == "unknown_kid"


def test_unknown_kids_do_not_hammer_the_idp(
    url_source: UrlJwksSource, jwks_server: JwksServer, clock: FakeClock, settings: AuthSettings, rsa_key: SigningKey
) -> None:
    validate_token(sign(rsa_key, base_claims()), settings, keys=url_source, now=NOW)
    for attempt in range(20):
        forged = sign(rsa_key, base_claims(), headers={"kid": f"forged-{attempt}"})
        with pytest.raises(AuthError) as caught:
            validate_token(forged, settings, keys=url_source, now=NOW)
        assert caught.value.code == "unknown_kid"
        clock.advance(1)
    # 20 forged kids over 20 s with a 30 s minimum interval: no refetch at all
    assert jwks_server.requests == 1
    clock.advance(30)
    with pytest.raises(AuthError):
        validate_token(sign(rsa_key, base_claims(), headers={"kid": "forged-late"}), settings, keys=url_source, now=NOW)
    assert jwks_server.requests == 2  # one refetch once the interval has passed


def test_ttl_expiry_refetches(
    url_source: UrlJwksSource, jwks_server: JwksServer, clock: FakeClock, settings: AuthSettings, rsa_key: SigningKey
) -> None:
    validate_token(sign(rsa_key, base_claims()), settings, keys=url_source, now=NOW)
    clock.advance(299)
    validate_token(sign(rsa_key, base_claims()), settings, keys=url_source, now=NOW)
    assert jwks_server.requests == 1
    clock.advance(1)
    validate_token(sign(rsa_key, base_claims()), settings, keys=url_source, now=NOW)
    assert jwks_server.requests == 2


def test_outage_keeps_cached_keys(
    url_source: UrlJwksSource, jwks_server: JwksServer, clock: FakeClock, settings: AuthSettings, rsa_key: SigningKey
) -> None:
    validate_token(sign(rsa_key, base_claims()), settings, keys=url_source, now=NOW)
    jwks_server.status = 500
    clock.advance(301)  # TTL over, refetch fails: keep serving the cached keys
    assert validate_token(sign(rsa_key, base_claims()), settings, keys=url_source, now=NOW)
    assert jwks_server.requests == 2
    assert url_source.stats.failures == 1


def test_unreachable_jwks_without_cache_is_503(
    settings: AuthSettings, rsa_key: SigningKey, jwks_server: JwksServer
) -> None:
    jwks_server.status = 503
    source = UrlJwksSource(jwks_server.url)
    try:
        with pytest.raises(AuthError) as caught:
            validate_token(sign(rsa_key, base_claims()), settings, keys=source, now=NOW)
    finally:
        source.close()
    assert (caught.value.status, caught.value.code) == (503, "jwks_unavailable")


def test_settings_with_jwks_url_validate_end_to_end(
    jwks_server: JwksServer, settings: AuthSettings, rsa_key: SigningKey
) -> None:
    url_settings = AuthSettings(
        mode="jwt",
        environment="development",
        issuer=settings.issuer,
        audience=settings.audience,
        token_endpoint=settings.token_endpoint,
        jwks_url=jwks_server.url,
    )
    assert validate_token(sign(rsa_key, base_claims()), url_settings, now=NOW).subject == "ehr-client-7"
    assert validate_token(sign(rsa_key, base_claims()), url_settings, now=NOW).subject == "ehr-client-7"
    assert jwks_server.requests == 1
    assert key_source_for(url_settings) is key_source_for(url_settings)


# --------------------------------------------------------------------------- JWK Set filtering


def test_jwks_drops_symmetric_weak_and_encryption_keys(rsa_key: SigningKey) -> None:
    import base64

    from cryptography.hazmat.primitives.asymmetric import rsa

    small = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key().public_numbers()  # noqa: S505 (weak on purpose)
    small_n = base64.urlsafe_b64encode(small.n.to_bytes(128, "big")).rstrip(b"=").decode()
    document = {
        "keys": [
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "weak", "n": small_n, "e": "AQAB"},
            rsa_key.public_jwk | {"kid": "enc", "use": "enc"},
            rsa_key.public_jwk | {"kid": "hs", "alg": "HS256"},
            rsa_key.public_jwk | {"d": "private-part-should-not-be-kept"},
        ]
    }
    usable = parse_jwks(document)
    assert [key["kid"] for key in usable] == ["rsa-1"]
    assert "d" not in usable[0]


def test_jwk_alg_pins_the_algorithm(rsa_key: SigningKey, settings: AuthSettings) -> None:
    keys = StaticJwks({"keys": [rsa_key.public_jwk | {"alg": "RS384"}]})
    assert validate_token(sign(rsa_key, base_claims(), alg="RS384"), settings, keys=keys, now=NOW)
    with pytest.raises(AuthError) as caught:
        validate_token(sign(rsa_key, base_claims(), alg="RS256"), settings, keys=keys, now=NOW)
    assert caught.value.code == "unknown_kid"


def test_not_a_jwks_is_rejected() -> None:
    with pytest.raises(ValueError):
        parse_jwks({"kty": "RSA"})


# --------------------------------------------------------------------------- file source


def test_file_source_rereads_a_rotated_file(
    tmp_path: Path, settings: AuthSettings, rsa_key: SigningKey, rsa_key_2: SigningKey
) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [rsa_key.public_jwk]}))
    source = FileJwksSource(path)
    assert validate_token(sign(rsa_key, base_claims()), settings, keys=source, now=NOW)
    path.write_text(json.dumps({"keys": [rsa_key.public_jwk, rsa_key_2.public_jwk]}) + "\n")
    assert validate_token(sign(rsa_key_2, base_claims()), settings, keys=source, now=NOW)


def test_file_source_via_settings(
    tmp_path: Path, settings: AuthSettings, jwks: dict[str, Any], ec384_key: SigningKey
) -> None:
    path = tmp_path / "idp-jwks.json"
    path.write_text(json.dumps(jwks))
    file_settings = settings.model_copy(update={"jwks_file": path})
    assert validate_token(sign(ec384_key, base_claims()), file_settings, now=NOW).subject == "ehr-client-7"


def test_missing_jwks_file_is_503(tmp_path: Path, settings: AuthSettings, rsa_key: SigningKey) -> None:
    with pytest.raises(AuthError) as caught:
        validate_token(sign(rsa_key, base_claims()), settings, keys=FileJwksSource(tmp_path / "absent.json"), now=NOW)
    assert caught.value.status == 503


# --------------------------------------------------------------------------- dev key pair


def test_dev_keypair_is_created_once_with_public_jwks_beside_it(tmp_path: Path) -> None:
    key_dir = tmp_path / ".local" / "dev-keys"
    first = ensure_dev_keypair(key_dir)
    second = ensure_dev_keypair(key_dir)
    assert first.kid == second.kid and first.private_pem == second.private_pem
    private_file = key_dir / DEV_PRIVATE_KEY_FILE
    assert stat.S_IMODE(private_file.stat().st_mode) == 0o600
    published = json.loads((key_dir / DEV_JWKS_FILE).read_text())
    assert published == {"keys": [first.public_jwk]}
    (jwk,) = published["keys"]
    assert jwk["kty"] == "RSA" and jwk["alg"] == "RS384" and jwk["use"] == "sig"
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(jwk)
    assert parse_jwks(published)  # a usable verification key (RSA >= 2048 bits)
