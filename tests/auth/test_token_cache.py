"""The verified-token cache: a hit gives the same principal without verifying again, yet an
expired token is still refused, other tokens are not hits, and the cache stays bounded."""

from __future__ import annotations

import pytest

from service.auth.errors import AuthError
from service.auth.keys import StaticJwks
from service.auth.settings import AuthSettings
from service.auth.token_cache import VerifiedTokenCache
from service.auth.tokens import validate_token
from tests.auth.conftest import NOW, SigningKey, base_claims, sign


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_a_remembered_token_gives_its_principal_until_it_expires(
    settings: AuthSettings, jwks: dict, rsa_key: SigningKey
) -> None:
    clock = Clock(NOW)
    cache = VerifiedTokenCache(clock=clock)
    token = sign(rsa_key, base_claims(exp=NOW + 120))
    assert cache.principal(token, settings) is None  # not verified yet
    principal = validate_token(token, settings, keys=StaticJwks(jwks), now=NOW)
    cache.remember(token, principal)
    hit = cache.principal(token, settings)
    assert hit is not None and hit.subject == principal.subject and hit.scopes == principal.scopes
    assert cache.principal(sign(rsa_key, base_claims(sub="someone-else")), settings) is None
    clock.now = NOW + 120 + settings.clock_skew_seconds + 1
    with pytest.raises(AuthError) as refused:
        cache.principal(token, settings)  # claims re-checked on every hit
    assert refused.value.status == 401


def test_entries_age_out_and_the_cache_is_bounded(settings: AuthSettings, jwks: dict, rsa_key: SigningKey) -> None:
    clock = Clock(NOW)
    cache = VerifiedTokenCache(size=2, max_age_seconds=30, clock=clock)
    tokens = [sign(rsa_key, base_claims(sub=f"client-{i}", exp=NOW + 3600)) for i in range(3)]
    for token in tokens:
        cache.remember(token, validate_token(token, settings, keys=StaticJwks(jwks), now=NOW))
    assert cache.principal(tokens[0], settings) is None  # the oldest was dropped for the third
    assert cache.principal(tokens[2], settings) is not None
    clock.now = NOW + 31
    assert cache.principal(tokens[2], settings) is None  # verified again after max_age_seconds


def _remembered(settings: AuthSettings, jwks: dict, rsa_key: SigningKey, lifetime: int):
    """A cache (on a controllable clock) holding one verified token that lives `lifetime` s."""
    clock = Clock(NOW)
    cache = VerifiedTokenCache(clock=clock)
    token = sign(rsa_key, base_claims(exp=NOW + lifetime))
    principal = validate_token(token, settings, keys=StaticJwks(jwks), now=NOW)
    cache.remember(token, principal, settings)
    return clock, cache, token, principal


def _refused(cache: VerifiedTokenCache, token: str, settings: AuthSettings) -> int:
    with pytest.raises(AuthError) as refused:
        cache.principal(token, settings)
    return refused.value.status


def test_a_hit_under_the_same_settings_reuses_the_principal_and_still_checks_expiry(
    settings: AuthSettings, jwks: dict, rsa_key: SigningKey
) -> None:
    clock, cache, token, principal = _remembered(settings, jwks, rsa_key, 60)
    assert cache.principal(token, settings) is principal  # nothing rebuilt
    clock.now = NOW + 60 + settings.clock_skew_seconds
    assert _refused(cache, token, settings) == 401


def test_a_hit_under_other_settings_checks_every_claim_again(
    settings: AuthSettings, jwks: dict, rsa_key: SigningKey
) -> None:
    _, cache, token, _ = _remembered(settings, jwks, rsa_key, 600)
    other_audience = settings.model_copy(update={"audience": ["https://elsewhere.example/fhir"]})
    assert _refused(cache, token, other_audience) == 401  # the audience no longer matches
