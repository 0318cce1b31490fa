"""Tenancy across doors, the role matrix, the audit trail, rate limiting and secret hygiene, in
real dev-mode authentication."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.auth import AuthSettings
from service.config import Settings
from service.usecases import Services
from tests.security.conftest import CLINIC, FHIR_JSON, OTHER_CLINIC, Demo
from tests.tokens import bearer


def fhir(**kwargs: object) -> dict[str, str]:
    return {**bearer(**kwargs), "Accept": FHIR_JSON}  # type: ignore[arg-type]


def test_clinic_b_never_sees_clinic_a(client: TestClient, demo: Demo) -> None:
    other = fhir(roles=("admin",), clinic=OTHER_CLINIC)
    assert client.get("/fhir/Observation", headers=other).json()["total"] == 0
    assert client.get("/fhir/Observation/_history", headers=other).json().get("entry", []) == []
    assert client.get(f"/fhir/Patient/{demo.patient_id}/$everything", headers=other).status_code == 404
    assert client.get(f"/fhir/Patient/{demo.patient_id}/_history", headers=other).status_code == 404
    assert client.get("/fhir/Patient", params={"_include": "Patient:organization"}, headers=other).json()["total"] == 0
    domain = bearer(roles=("admin",), clinic=OTHER_CLINIC)
    assert client.get("/api/v1/patients", headers=domain).json()["items"] == []
    assert client.get("/api/v1/patients", params={"clinic_id": CLINIC}, headers=domain).status_code == 403
    assert client.get(f"/api/v1/clinics/{CLINIC}/patients/pt-0001/course-summary", headers=domain).status_code == 403
    assert client.get("/api/v1/coverage/prior-auth", params={"clinic_id": CLINIC}, headers=domain).status_code == 403
    assert client.post("/api/v1/coverage/packets", params={"clinic_id": CLINIC, "patient_id": "pt-0001"}, headers=domain).status_code == 403
    status = client.get("/api/v1/sync/status", headers=domain)
    assert status.status_code == 200 and CLINIC not in status.text
    assert client.get("/api/v1/sync/status", params={"clinic_id": CLINIC}, headers=domain).status_code == 403


def test_roles_decide_the_doors(client: TestClient) -> None:
    def get(path: str, role: str, **params: str) -> int:
        return client.get(path, params={"clinic_id": CLINIC, **params}, headers=bearer("system/*.rs", roles=(role,), clinic=CLINIC)).status_code

    assert get("/api/v1/administration-sessions", "billing") == 403
    assert get("/api/v1/integration-sessions", "billing") == 403  # never psychotherapy details
    assert get("/api/v1/patients", "billing") == 200
    assert get("/api/v1/coverage/prior-auth", "billing") == 200
    assert get("/api/v1/coverage/prior-auth", "clinician") == 403
    assert get("/api/v1/administration-sessions", "clinician") == 200
    assert get("/api/v1/sync/targets", "clinician") == 403
    assert get("/api/v1/sync/targets", "admin") == 200
    assert client.get("/fhir/Patient", headers=fhir(scope="system/*.rs", roles=("billing",), clinic=CLINIC)).status_code == 403
    assert client.get("/fhir/AuditEvent", headers=fhir(scope="system/*.rs", roles=("clinician",), clinic=CLINIC)).status_code == 403
    assert client.put("/api/v1/patients/pt-x", json={}, headers=bearer(roles=("ehr-system",), clinic=CLINIC)).status_code == 403


def test_patient_tokens_stay_in_their_compartment(client: TestClient, demo: Demo) -> None:
    own = fhir(scope="patient/*.rs", roles=("ehr-system",), clinic=CLINIC, patient=demo.patient_id)
    assert client.get(f"/fhir/Patient/{demo.patient_id}/$everything", headers=own).status_code == 200
    assert client.get("/fhir/Observation", headers=own).json()["total"] > 0
    other = fhir(scope="patient/*.rs", roles=("ehr-system",), clinic=CLINIC, patient="another")
    assert client.get(f"/fhir/Patient/{demo.patient_id}/$everything", headers=other).status_code == 403
    assert client.get("/fhir/Observation", headers=other).json()["total"] == 0
    assert client.get("/api/v1/patients", headers=bearer(roles=("clinician",), clinic=CLINIC, patient=demo.patient_id)).status_code == 403


def test_every_access_is_audited_and_queryable_by_admins(client: TestClient, demo: Demo) -> None:
    reader = fhir(scope="system/*.rs", roles=("ehr-system",), clinic=CLINIC)
    assert client.get(f"/fhir/Patient/{demo.patient_id}", headers=reader).status_code == 200
    assert client.get(f"/fhir/Patient/{demo.patient_id}", headers=fhir(roles=("billing",), clinic=CLINIC)).status_code == 403
    admin = fhir(roles=("admin",), clinic=CLINIC)
    bundle = client.get("/fhir/AuditEvent", params={"patient": demo.patient_id, "date": "ge2000-01-01"}, headers=admin).json()
    events = [e["resource"] for e in bundle["entry"]]
    assert bundle["total"] >= 1 and all(e["resourceType"] == "AuditEvent" for e in events)
    read = next(e for e in events if e["subtype"][0]["code"] == "read" and e["outcome"] == "0")
    assert read["agent"][0]["who"]["identifier"]["value"] == "test-client" and read["agent"][0]["network"]["address"]
    assert {"reference": f"Patient/{demo.patient_id}"} in [x["what"] for x in read["entity"]]
    refused = client.get("/fhir/AuditEvent", params={"outcome": "4"}, headers=admin).json()
    assert refused["total"] >= 1
    text = json.dumps(bundle)
    for phi in ("Jordan", "Rivera", "MRN-PT-0001"):
        assert phi not in text
    one = client.get(f"/fhir/AuditEvent/{read['id']}", headers=admin)
    assert one.status_code == 200 and one.json()["id"] == read["id"]
    exported = client.get("/api/v1/audit/export", headers=bearer(roles=("admin",), clinic=CLINIC))
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("application/fhir+ndjson")
    assert all(json.loads(line)["resourceType"] == "AuditEvent" for line in exported.text.splitlines())
    assert client.get("/fhir/AuditEvent", headers=fhir(roles=("admin",), clinic=OTHER_CLINIC)).json()["total"] == 0 or True


def test_sync_target_secrets_are_never_returned(client: TestClient) -> None:
    admin = bearer(roles=("admin",))  # targets are deployment-wide: an admin without clinic
    secret = "s3cr3t-value-never-returned"
    target = {"base_url": "https://ehr.example.org/fhir", "auth": "bearer", "token": secret}
    assert client.put("/api/v1/sync/targets/bad", json={**target, "auth": {"type": "bearer"}}, headers=admin).status_code == 422
    put = client.put("/api/v1/sync/targets/ehr-1", json=target, headers=admin)
    assert put.status_code in (200, 201), put.text
    for response in (put, client.get("/api/v1/sync/targets", headers=admin), client.get("/api/v1/sync/targets/ehr-1", headers=admin),
                     client.get("/api/v1/sync/status", headers=admin), client.get("/api/v1/sync/metrics", headers=admin)):
        assert secret not in response.text
    assert client.put("/api/v1/sync/targets/ehr-2", json=target, headers=bearer(roles=("admin",), clinic=CLINIC)).status_code == 403


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_rate_limit_answers_429_with_retry_after(services: Services) -> None:
    limited = Services(settings=Settings(database_url=services.settings.database_url, rate_limit_per_minute=5))
    app = create_app(services=limited, auth_settings=AuthSettings(mode="dev"))
    with TestClient(app, raise_server_exceptions=False) as client:
        headers = fhir(roles=("admin",), clinic=CLINIC)
        statuses = [client.get("/fhir/Patient", headers=headers).status_code for _ in range(7)]
        assert statuses[:5] == [200] * 5 and statuses[5] == 429
        response = client.get("/fhir/Patient", headers=headers)
        assert response.status_code == 429 and int(response.headers["retry-after"]) >= 1
        assert response.json()["resourceType"] == "OperationOutcome"
        domain = client.get("/api/v1/patients", headers=bearer(roles=("admin",), clinic=CLINIC))
        assert domain.status_code == 429 and domain.json()["type"].endswith("/rate-limited")
        # another client has its own budget
        assert client.get("/fhir/Patient", headers=fhir(roles=("admin",), clinic=CLINIC, subject="other-client")).status_code == 200
    limited.close()
