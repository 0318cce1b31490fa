"""The sync admin API: target CRUD with write-only secrets, status per resource and record,
metrics (JSON and Prometheus), replay, and pull (against the Medplum peer)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.config import Settings
from service.store.sync_repository import SyncStore
from service.usecases import Services

from tests.tokens import bearer, authorize

from .fake_fhir import FakeFhir
from .support import FAST, load_courses, put_resource
from service.sync.client import FhirTargetClient
from service.sync.targets import TargetConfig
from service.sync.worker import SyncWorker


@pytest.fixture
def services(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    for name in ("SYNC_TARGET_URL", "SYNC_TARGET_NAME"):
        monkeypatch.delenv(name, raising=False)
    services = Services(settings=Settings(database_url=database_url))
    services.migrate()
    yield services
    services.close()


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services=services), raise_server_exceptions=False) as test_client:
        yield authorize(test_client)  # an admin token without a clinic claim


def test_targets_crud_never_returns_secrets(client: TestClient) -> None:
    body = {"name": "ehr-a", "base_url": "https://ehr.example/fhir/", "auth": "bearer", "token": "sup3r-secret",
            "resource_types": ["Patient", "Observation"]}
    created = client.post("/api/v1/sync/targets", json=body)
    assert created.status_code == 201, created.text
    assert "sup3r-secret" not in created.text
    assert created.json()["secret_set"] is True and created.json()["base_url"] == "https://ehr.example/fhir"
    assert client.post("/api/v1/sync/targets", json=body).status_code == 409
    # a change without the secret keeps it; nothing returns it
    changed = client.put("/api/v1/sync/targets/ehr-a", json={"base_url": "https://ehr2.example/fhir"})
    assert changed.status_code == 200 and changed.json()["secret_set"] is True
    for response in (client.get("/api/v1/sync/targets"), client.get("/api/v1/sync/targets/ehr-a")):
        assert response.status_code == 200 and "sup3r-secret" not in response.text
    bad = client.put("/api/v1/sync/targets/ehr-b", json={"base_url": "ftp://x", "auth": "none"})
    assert bad.status_code == 422
    assert client.put("/api/v1/sync/targets/ehr-c", json={"base_url": "https://x", "auth": "basic"}).status_code == 422
    clinic_admin = bearer(roles=("admin",), clinic="riverbend")
    assert client.put("/api/v1/sync/targets/ehr-a", json={"base_url": "https://x"}, headers=clinic_admin).status_code == 403
    assert client.get("/api/v1/sync/targets", headers={"Authorization": ""}).status_code == 401
    assert client.delete("/api/v1/sync/targets/ehr-a").status_code == 204
    assert client.get("/api/v1/sync/targets/ehr-a").status_code == 404


def test_status_metrics_and_replay(client: TestClient, services: Services) -> None:
    load_courses(services.engine, 1)
    put_resource(services.engine, {"resourceType": "Organization", "id": "refused-org"})
    fake = FakeFhir(enforce_references=False)
    fake.refuse = lambda r: "name: minimum required = 1" if r.get("id") == "refused-org" else None
    assert client.put("/api/v1/sync/targets/ehr", json={"base_url": "https://ehr.example/fhir"}).status_code == 200
    worker = SyncWorker(SyncStore(services.engine), [TargetConfig(name="ehr", base_url="https://ehr.example/fhir")], FAST,
                        client_factory=lambda t: FhirTargetClient(t, http=fake.client()))
    assert worker.run(until_idle=True, max_seconds=60).fatal is None

    dead = client.get("/api/v1/sync/status", params={"target": "ehr", "status": "dead"}).json()
    assert [i["resource"] for i in dead["items"]] == ["Organization/refused-org"]
    assert "minimum required" in dead["items"][0]["last_error"]
    by_record = client.get("/api/v1/sync/status", params={"record_kind": "patients", "target": "ehr"}).json()["items"]
    assert by_record and all(i["status"] == "sent" and i["target_id"] for i in by_record)
    assert {i["resource"].split("/")[0] for i in by_record} == {"Patient", "Provenance"}
    one = by_record[0]["resource"].split("/")
    single = client.get("/api/v1/sync/status", params={"resource_type": one[0], "resource_id": one[1]}).json()["items"]
    assert len(single) == 1 and single[0]["sent_version_id"] == 1

    metrics = client.get("/api/v1/sync/metrics").json()["targets"]["ehr"]
    assert metrics["status"]["dead"] == 1 and metrics["counters"]["sent"] == metrics["status"]["sent"]
    text = client.get("/metrics").text
    assert 'sync_items{target="ehr",status="dead"} 1' in text

    assert client.post("/api/v1/sync/replay", json={"target": "nope"}).status_code == 404
    replayed = client.post("/api/v1/sync/replay", json={"target": "ehr", "resource": "Organization/refused-org"})
    assert replayed.json() == {"target": "ehr", "replayed": 1}
    assert client.get("/api/v1/sync/metrics").json()["targets"]["ehr"]["status"]["pending"] == 1


def test_pull_imports_a_patient_from_the_ehr_without_echoing_it_back(client: TestClient, services: Services, medplum_peer) -> None:  # type: ignore[no-untyped-def]
    import httpx

    medplum_peer.reset()
    with medplum_peer.client() as ehr:
        patient = ehr.post("/Patient", json={"resourceType": "Patient", "identifier": [{"system": "https://ehr.example/mrn", "value": "M-77"}],
                                             "name": [{"family": "Okafor"}], "gender": "female"}).json()
        ref = {"reference": f"Patient/{patient['id']}"}
        ehr.post("/Coverage", json={"resourceType": "Coverage", "status": "active", "beneficiary": ref,
                                    "payor": [{"display": "Acme Health"}]}).raise_for_status()
        ehr.post("/Condition", json={"resourceType": "Condition", "subject": ref, "code": {"text": "MDD"}}).raise_for_status()
        for drug in ("sertraline", "bupropion"):
            ehr.post("/MedicationRequest", json={"resourceType": "MedicationRequest", "status": "completed", "intent": "order",
                                                 "subject": ref, "medicationCodeableConcept": {"text": drug}}).raise_for_status()
    assert client.put("/api/v1/sync/targets/ehr", json={"base_url": medplum_peer.base_url}).status_code == 200
    pulled = client.post("/api/v1/sync/pull", json={"target": "ehr", "identifier": "https://ehr.example/mrn|M-77",
                                                    "clinic_id": "riverbend"})
    assert pulled.status_code == 200, pulled.text
    report = pulled.json()
    assert report["counts"] == {"Patient": 1, "Coverage": 1, "Condition": 1, "MedicationRequest": 2}
    ours = report["patients"][0]
    status = client.get("/api/v1/sync/status", params={"target": "ehr"}).json()["items"]
    assert len(status) == 5 and all(i["status"] == "sent" for i in status)  # already there: not sent back
    assert client.post("/api/v1/sync/pull", json={"target": "ehr", "identifier": "https://ehr.example/mrn|none",
                                                         "clinic_id": "riverbend"}).status_code == 404
    again = client.post("/api/v1/sync/pull", json={"target": "ehr", "identifier": "https://ehr.example/mrn|M-77",
                                                       "clinic_id": "riverbend"}).json()
    assert again["patients"] == [ours] and again["unchanged"] == 5
    _ = httpx
