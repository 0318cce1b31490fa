"""Outbound auth: the SMART Backend Services assertion (every claim checked), token caching,
re-authenticating once on a 401, basic and bearer headers."""

from __future__ import annotations

import base64
import time
import urllib.parse

import httpx
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jose import jwt

from service.auth.client_assertion import ASSERTION_TYPE, ClientAssertionError, sign_client_assertion
from service.sync.client import FhirTargetClient
from service.sync.errors import FatalTargetError, PermanentError
from service.sync.targets import TargetConfig

TOKEN_URL = "https://auth.ehr.example/oauth2/token"
BASE = "https://ehr.example/fhir"


def _pem(key) -> str:  # type: ignore[no-untyped-def]
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _public_pem(key) -> str:  # type: ignore[no-untyped-def]
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo).decode()


@pytest.fixture(scope="module")
def rsa_key():  # type: ignore[no-untyped-def]
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key():  # type: ignore[no-untyped-def]
    return ec.generate_private_key(ec.SECP384R1())


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_client_assertion_claims(alg: str, rsa_key, ec_key) -> None:  # type: ignore[no-untyped-def]
    key = rsa_key if alg == "RS384" else ec_key
    now = time.time()
    token = sign_client_assertion(client_id="ketamine-sync", token_url=TOKEN_URL, private_key_pem=_pem(key),
                                  key_id="key-2026", alg=alg, now=now)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": alg, "typ": "JWT", "kid": "key-2026"}
    claims = jwt.decode(token, _public_pem(key), algorithms=[alg], audience=TOKEN_URL)
    assert claims["iss"] == claims["sub"] == "ketamine-sync"
    assert claims["aud"] == TOKEN_URL
    assert 0 < claims["exp"] - int(now) <= 300
    assert isinstance(claims["jti"], str) and len(claims["jti"]) >= 16
    again = jwt.get_unverified_claims(
        sign_client_assertion(client_id="ketamine-sync", token_url=TOKEN_URL, private_key_pem=_pem(key), key_id="k", alg=alg)
    )
    assert again["jti"] != claims["jti"]  # fresh every time


def test_client_assertion_lifetime_is_capped_and_rs256_refused(rsa_key) -> None:  # type: ignore[no-untyped-def]
    token = sign_client_assertion(client_id="c", token_url=TOKEN_URL, private_key_pem=_pem(rsa_key), key_id="k",
                                  lifetime_seconds=3600, now=1_000_000)
    assert jwt.get_unverified_claims(token)["exp"] == 1_000_300
    with pytest.raises(ClientAssertionError):
        sign_client_assertion(client_id="c", token_url=TOKEN_URL, private_key_pem=_pem(rsa_key), key_id="k", alg="RS256")
    with pytest.raises(ClientAssertionError):
        sign_client_assertion(client_id="c", token_url=TOKEN_URL, private_key_pem="not a key", key_id="k")


class FakeEhr:
    """Token endpoint + FHIR endpoint; tokens can be revoked to provoke a 401."""

    def __init__(self, public_pem: str, alg: str, expires_in: int = 300) -> None:
        self.public_pem = public_pem
        self.alg = alg
        self.expires_in = expires_in
        self.token_requests: list[dict[str, str]] = []
        self.valid: set[str] = set()
        self.fhir_requests = 0
        self.always_401 = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if str(request.url) == TOKEN_URL:
            form = dict(urllib.parse.parse_qsl(request.content.decode()))
            self.token_requests.append(form)
            assert form["grant_type"] == "client_credentials"
            assert form["client_assertion_type"] == ASSERTION_TYPE
            jwt.decode(form["client_assertion"], self.public_pem, algorithms=[self.alg], audience=TOKEN_URL)
            token = f"tok-{len(self.token_requests)}"
            self.valid = {token}
            return httpx.Response(200, json={"access_token": token, "token_type": "bearer", "expires_in": self.expires_in,
                                             "scope": form.get("scope", "")})
        if str(request.url) == f"{BASE}/.well-known/smart-configuration":
            return httpx.Response(200, json={"token_endpoint": TOKEN_URL, "capabilities": ["client-confidential-asymmetric"]})
        self.fhir_requests += 1
        auth = request.headers.get("Authorization", "")
        if self.always_401 or auth.removeprefix("Bearer ") not in self.valid:
            return httpx.Response(401, json={"resourceType": "OperationOutcome",
                                             "issue": [{"severity": "error", "code": "login", "diagnostics": "expired"}]})
        return httpx.Response(200, json={"resourceType": "Patient", "id": "p1", "meta": {"versionId": "4"}})


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _smart_client(tmp_path, key, alg: str, ehr: FakeEhr, clock: Clock, token_url: str | None = TOKEN_URL):  # type: ignore[no-untyped-def]
    key_file = tmp_path / "sync-key.pem"
    key_file.write_text(_pem(key))
    target = TargetConfig(name="ehr", base_url=BASE, auth="smart", client_id="ketamine-sync", token_url=token_url,
                          private_key_file=str(key_file), key_id="k1", alg=alg, scope="system/Patient.cu").validate()
    http = httpx.Client(transport=httpx.MockTransport(ehr))
    from service.sync.auth import SmartBackendAuth

    return FhirTargetClient(target, http=http, auth=SmartBackendAuth(target, http, clock=clock))


@pytest.mark.parametrize("alg", ["RS384", "ES384"])
def test_token_is_cached_until_shortly_before_expiry(tmp_path, rsa_key, ec_key, alg: str) -> None:  # type: ignore[no-untyped-def]
    key = rsa_key if alg == "RS384" else ec_key
    ehr, clock = FakeEhr(_public_pem(key), alg), Clock()
    client = _smart_client(tmp_path, key, alg, ehr, clock)
    for _ in range(5):
        client.put("Patient", "p1", b'{"resourceType":"Patient","id":"p1"}')
    assert len(ehr.token_requests) == 1
    assert ehr.token_requests[0]["scope"] == "system/Patient.cu"
    clock.now += 300 - 31  # still more than the refresh margin before expiry
    client.put("Patient", "p1", b"{}")
    assert len(ehr.token_requests) == 1
    clock.now += 2  # within 30 s of expiry: refresh first
    client.put("Patient", "p1", b"{}")
    assert len(ehr.token_requests) == 2
    assert ehr.token_requests[0]["client_assertion"] != ehr.token_requests[1]["client_assertion"]


def test_token_url_is_discovered_from_smart_configuration(tmp_path, rsa_key) -> None:  # type: ignore[no-untyped-def]
    ehr = FakeEhr(_public_pem(rsa_key), "RS384")
    client = _smart_client(tmp_path, rsa_key, "RS384", ehr, Clock(), token_url=None)
    written = client.put("Patient", "p1", b"{}")
    assert written.target_id == "p1" and written.target_version == "4"
    assert len(ehr.token_requests) == 1


def test_a_401_reauthenticates_once_then_is_permanent(tmp_path, rsa_key) -> None:  # type: ignore[no-untyped-def]
    ehr, clock = FakeEhr(_public_pem(rsa_key), "RS384"), Clock()
    client = _smart_client(tmp_path, rsa_key, "RS384", ehr, clock)
    client.put("Patient", "p1", b"{}")
    ehr.valid = set()  # the EHR revoked our token early
    client.put("Patient", "p1", b"{}")  # 401 -> new token -> retried once -> OK
    assert len(ehr.token_requests) == 2
    assert client.reauthentications == 1
    ehr.always_401 = True
    before = ehr.fhir_requests
    with pytest.raises(PermanentError) as refused:
        client.put("Patient", "p1", b"{}")
    assert ehr.fhir_requests - before == 2  # the request and exactly one retry
    assert refused.value.status == 401 and "expired" in refused.value.message


def test_token_endpoint_refusal_is_a_fatal_configuration_error(tmp_path, rsa_key, ec_key) -> None:  # type: ignore[no-untyped-def]
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": "invalid_client"})

    key_file = tmp_path / "k.pem"
    key_file.write_text(_pem(rsa_key))
    target = TargetConfig(name="ehr", base_url=BASE, auth="smart", client_id="c", token_url=TOKEN_URL,
                          private_key_file=str(key_file), key_id="k1")
    client = FhirTargetClient(target, http=httpx.Client(transport=httpx.MockTransport(refuse)))
    with pytest.raises(FatalTargetError, match="invalid_client"):
        client.put("Patient", "p1", b"{}")


def test_basic_and_bearer_headers() -> None:
    seen: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(201, json={"id": "p1"})

    http = httpx.Client(transport=httpx.MockTransport(record))
    FhirTargetClient(TargetConfig(name="a", base_url=BASE, auth="basic", username="u", password="p w"), http=http).put(
        "Patient", "p1", b"{}")
    FhirTargetClient(TargetConfig(name="b", base_url=BASE, auth="bearer", token="t0k"), http=http).put("Patient", "p1", b"{}")
    assert seen == ["Basic " + base64.b64encode(b"u:p w").decode(), "Bearer t0k"]


def test_secrets_never_appear_in_repr_or_public_view() -> None:
    target = TargetConfig(name="a", base_url=BASE, auth="bearer", token="s3cret-token")
    assert "s3cret" not in repr(target)
    assert "s3cret" not in orjson.dumps(target.public_view()).decode()
