"""Hostile tokens against real endpoints (FHIR read, search, create; domain PUT), in real
dev-mode authentication: every one is refused with 401 or 403 (a FHIR OperationOutcome under
/fhir, a problem document elsewhere) and NOTHING is written (row counts of every table, the
audit trail aside, are equal before and after).

One row answers differently, on purpose, where a 403 would leak that another tenant's data
exists: a clinic token reading another clinic's resource gets 404, its search comes back empty
(filtered), and its create referring to the other clinic's patient is told that patient does
not exist (422, exactly as for an id that exists nowhere). Everything else is 401 (unusable
token) or 403 (valid token, not allowed).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from typing import Any, Callable

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from jose import jwt as jose_jwt

from service.auth import AuthSettings
from service.auth.keys import ensure_dev_keypair
from service.auth.settings import DEV_AUDIENCE, DEV_ISSUER
from tests.security.conftest import CLINIC, FHIR_JSON, OTHER_CLINIC, Demo, row_counts
from tests.tokens import token

PROBLEM = "application/problem+json"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**override: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": DEV_ISSUER, "aud": DEV_AUDIENCE, "sub": "attacker", "client_id": "attacker", "iat": now,
              "nbf": now, "exp": now + 600, "jti": str(uuid.uuid4()), "scope": "system/*.cruds",
              "roles": ["admin"], "clinic": CLINIC}
    claims.update(override)
    return {k: v for k, v in claims.items() if v is not None}


def _signed(claims: dict[str, Any], *, kid: str | None = None, private_pem: bytes | None = None) -> str:
    keypair = ensure_dev_keypair(AuthSettings(mode="dev").dev_key_dir)
    return jose_jwt.encode(claims, (private_pem or keypair.private_pem).decode(), algorithm="RS384",
                           headers={"kid": kid or keypair.kid})


def expired() -> str:
    return _signed(_claims(iat=int(time.time()) - 7200, nbf=int(time.time()) - 7200, exp=int(time.time()) - 3600))


def not_yet_valid() -> str:
    return _signed(_claims(nbf=int(time.time()) + 3600, exp=int(time.time()) + 7200))


def wrong_issuer() -> str:
    return _signed(_claims(iss="https://evil.example.org"))


def wrong_audience() -> str:
    return _signed(_claims(aud="https://another-server.example.org/fhir"))


def alg_none() -> str:
    header = _b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    return f"{header}.{_b64(json.dumps(_claims()).encode())}."


def hs256_with_public_key() -> str:
    keypair = ensure_dev_keypair(AuthSettings(mode="dev").dev_key_dir)
    public_pem = keypair.jwks_path.read_bytes()  # what an attacker can see: the published key
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", "kid": keypair.kid}).encode())
    body = _b64(json.dumps(_claims()).encode())
    signature = hmac.new(public_pem, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(signature)}"


def unknown_kid() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return _signed(_claims(), kid="attacker-key", private_pem=pem)


def tampered() -> str:
    genuine = token("system/*.rs", roles=("ehr-system",), clinic=CLINIC)
    header, body, signature = genuine.split(".")
    claims = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    claims.update(scope="system/*.cruds", roles=["admin"])  # privilege escalation attempt
    return f"{header}.{_b64(json.dumps(claims).encode())}.{signature}"


def missing_scope() -> str:
    return token("openid fhirUser", roles=("ehr-system",), clinic=CLINIC)


def scope_for_another_type() -> str:
    return token("system/Practitioner.cruds", roles=("ehr-system",), clinic=CLINIC)


def patient_token_for_another_patient() -> str:
    return token("patient/*.cruds", roles=("clinician",), clinic=CLINIC, patient="someone-else")


def clinic_token_for_another_clinic() -> str:
    return token("system/*.cruds", roles=("clinician",), clinic=OTHER_CLINIC)


UNUSABLE = {"expired": expired, "not-yet-valid": not_yet_valid, "wrong-issuer": wrong_issuer,
            "wrong-audience": wrong_audience, "alg-none": alg_none, "hs256-with-public-key": hs256_with_public_key,
            "unknown-kid": unknown_kid, "tampered-payload": tampered}
# name -> (token factory, expected status per endpoint: fhir_read, fhir_search, fhir_create, domain_put)
CASES: dict[str, tuple[Callable[[], str], dict[str, tuple[int, ...]]]] = {
    **{name: (factory, {"fhir_read": (401,), "fhir_search": (401,), "fhir_create": (401,), "domain_put": (401,)})
       for name, factory in UNUSABLE.items()},
    "missing-scope": (missing_scope, {"fhir_read": (403,), "fhir_search": (403,), "fhir_create": (403,), "domain_put": (403,)}),
    "scope-for-another-type": (scope_for_another_type,
                               {"fhir_read": (403,), "fhir_search": (403,), "fhir_create": (403,), "domain_put": (403,)}),
    "patient-token-other-patient": (patient_token_for_another_patient,
                                    {"fhir_read": (403,), "fhir_search": (403,), "fhir_create": (403,), "domain_put": (403,)}),
    # 404 / filtered: answering 403 would confirm that the other clinic's ids exist
    "clinic-token-other-clinic": (clinic_token_for_another_clinic,
                                  {"fhir_read": (404,), "fhir_search": (200,), "fhir_create": (403, 422), "domain_put": (403,)}),
}
TOKENS_TRIED = len(CASES)


def _request(client: TestClient, endpoint: str, demo: Demo, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    fhir = {**headers, "Accept": FHIR_JSON}
    if endpoint == "fhir_read":
        return client.get(f"/fhir/Patient/{demo.patient_id}", headers=fhir)
    if endpoint == "fhir_search":
        return client.get("/fhir/Observation", params={"patient": demo.patient_id}, headers=fhir)
    if endpoint == "fhir_create":
        observation = {
            "resourceType": "Observation", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
            "subject": {"reference": f"Patient/{demo.patient_id}"}, "effectiveDateTime": "2026-05-01T10:00:00Z",
            "valueQuantity": {"value": 72, "unit": "beats/minute", "system": "http://unitsofmeasure.org", "code": "/min"},
        }
        return client.post("/fhir/Observation", json=observation, headers={**fhir, "Content-Type": FHIR_JSON})
    payload = {"clinic_id": CLINIC, "id": "pt-0001-session-1-vitals-hostile", "patient_id": demo.patient_key,
               "session_id": "pt-0001-session-1", "taken_at": "2026-03-02T09:00:00-05:00", "phase": "pre-dose",
               "systolic_mmhg": 120, "diastolic_mmhg": 80, "heart_rate_bpm": 70, "performer_id": "rn-okafor"}
    return client.put(f"/api/v1/vitals/{payload['id']}", json=payload, headers=headers)


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_token_is_refused_and_writes_nothing(case: str, client: TestClient, demo: Demo, services) -> None:  # type: ignore[no-untyped-def]
    factory, expected = CASES[case]
    headers = {"Authorization": f"Bearer {factory()}"}
    before = row_counts(services)
    for endpoint, statuses in expected.items():
        response = _request(client, endpoint, demo, headers)
        assert response.status_code in statuses, (case, endpoint, response.status_code, response.text[:300])
        if response.status_code == 200:  # the filtered search: nothing of the other clinic
            assert response.json()["total"] == 0 and not [e for e in response.json().get("entry", [])
                                                          if e.get("search", {}).get("mode") == "match"]
            continue
        body = response.json()
        if endpoint.startswith("fhir"):
            assert response.headers["content-type"].startswith(FHIR_JSON)
            assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["severity"] == "error"
        else:
            assert response.headers["content-type"].startswith(PROBLEM)
            assert body["status"] == response.status_code and body["type"].startswith("https://")
        if response.status_code == 401:
            assert response.headers["www-authenticate"].startswith("Bearer")
        assert "attacker" not in response.text  # nothing of the token is echoed
    assert row_counts(services) == before, case


def test_genuine_token_passes_the_same_endpoints(client: TestClient, demo: Demo, services) -> None:  # type: ignore[no-untyped-def]
    """The control: the same requests with a clinician token of the right clinic succeed."""
    headers = {"Authorization": f"Bearer {token('system/*.cruds', roles=('clinician',), clinic=CLINIC)}"}
    assert _request(client, "fhir_read", demo, headers).status_code == 200
    assert _request(client, "fhir_search", demo, headers).json()["total"] > 0
    assert _request(client, "fhir_create", demo, headers).status_code == 201
    assert _request(client, "domain_put", demo, headers).status_code == 201


def test_no_token_is_401_everywhere_but_public_endpoints(client: TestClient) -> None:
    for path in ("/fhir/Patient", "/api/v1/patients", "/api/v1/coverage/prior-auth", "/api/v1/sync/targets",
                 "/api/v1/sync/status", "/fhir/AuditEvent", "/api/v1/audit/export", "/metrics"):
        response = client.get(path)
        assert response.status_code == 401, (path, response.text)
        assert response.headers["www-authenticate"] == 'Bearer realm="ketamine-fhir-service"'
    for path in ("/health", "/fhir/metadata", "/.well-known/smart-configuration", "/fhir/.well-known/smart-configuration"):
        assert client.get(path).status_code == 200, path
