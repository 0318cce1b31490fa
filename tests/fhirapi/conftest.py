"""Fixtures of the FHIR REST API tests: `fhir` is a TestClient on a fresh database (SQLite and
PostgreSQL, via `database_url`) with the demo course loaded; `demo` names its ids."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.tokens import authorize
from service.api import create_app
from service.config import Settings
from service.demo import load_demo
from service.usecases import Services

FHIR_JSON = "application/fhir+json"
CLINIC = "riverbend"


@dataclass
class Demo:
    patient_id: str
    organization_id: str


@pytest.fixture
def services(database_url: str, tmp_path: Path) -> Iterator[Services]:
    services = Services(settings=Settings(database_url=database_url, export_dir=tmp_path / "exports"))
    services.migrate()
    load_demo(services.uow_factory)
    yield services
    services.close()


@pytest.fixture
def fhir(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services=services), raise_server_exceptions=False) as client:
        client.headers["Accept"] = FHIR_JSON
        yield authorize(client)


@pytest.fixture
def demo(fhir: TestClient) -> Demo:
    patient = fhir.get("/fhir/Patient").json()["entry"][0]["resource"]
    return Demo(patient["id"], patient["managingOrganization"]["reference"].split("/")[1])


def outcome(response, status: int, *, expression: str | None = None, text: str | None = None) -> dict:
    """Assert an OperationOutcome error response with `status` (and an issue naming `expression`)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON), response.headers
    body = response.json()
    assert body["resourceType"] == "OperationOutcome", body
    assert body["issue"] and all("severity" in i and "code" in i for i in body["issue"])
    if expression is not None:
        found = [e for i in body["issue"] for e in i.get("expression", [])]
        assert any(expression in e for e in found), (expression, body)
    if text is not None:
        assert any(text in i.get("diagnostics", "") for i in body["issue"]), (text, body)
    return body


def new_patient(mrn: str = "EHR-1", **extra) -> dict:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.19.5", "value": mrn}],
        "name": [{"family": "Nguyen", "given": ["Alex"]}],
        "gender": "other",
        "birthDate": "1990-04-02",
        **extra,
    }


def new_observation(patient_id: str, value: float = 72, when: str = "2026-05-01T10:00:00Z", **extra) -> dict:
    return {
        "resourceType": "Observation",
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4", "display": "Heart rate"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "effectiveDateTime": when,
        "valueQuantity": {"value": value, "unit": "beats/minute", "system": "http://unitsofmeasure.org", "code": "/min"},
        **extra,
    }
