"""End to end: the service in a real server process (`python -m service serve`, after
`python -m service demo`) on SQLite and PostgreSQL, driven by real FHIR clients: fhirpy
(SyncFHIRClient) and the SMART `fhirclient`. Every resource and Bundle they get back passes
the HL7 validator with zero errors (CapabilityStatement, searchsets, transaction-response)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import httpx
import pytest

from tests.served import serving
from tests.tokens import token

from .conftest import CLINIC, new_observation, new_patient

pytestmark = pytest.mark.slow
PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "WARNING"}
    subprocess.run([sys.executable, "-m", "service", "demo"], cwd=PROJECT, env=env, check=True, capture_output=True, timeout=300)
    log = tmp_path / "server.log"
    with serving(env, log, ready_path="/fhir/metadata") as (base, _):
        yield f"{base}/fhir"
    assert "Traceback" not in log.read_text(), log.read_text()


def test_fhirpy_create_search_page_read_conditional_transaction(server: str, assert_fhir_valid) -> None:
    from fhirpy import SyncFHIRClient

    client = SyncFHIRClient(server, authorization="Bearer " + token(roles=("clinician",), clinic=CLINIC),
                            extra_headers={"X-Clinic-Id": CLINIC})
    assert_fhir_valid(client.execute("metadata", method="get"))

    patient = client.resource("Patient", **{k: v for k, v in new_patient("E2E-1").items() if k != "resourceType"})
    patient.save()
    assert patient.id and patient["meta"]["versionId"] == "1"
    assert_fhir_valid(client.get("Patient", patient.id))

    for n in range(7):
        obs = client.resource("Observation", **{k: v for k, v in new_observation(patient.id, 60 + n, f"2026-05-0{n + 1}T10:00:00Z").items() if k != "resourceType"})
        obs.save()
    search = client.resources("Observation").search(patient=patient.id, code="http://loinc.org|8867-4", date__ge="2026-05-02").limit(2)
    found = search.fetch_all()  # follows next links
    assert len(found) == 6 and len({o.id for o in found}) == 6
    assert search.count() == 6
    raw = client.execute("Observation", method="get", params={"patient": patient.id, "_count": 3, "_include": "Observation:patient"})
    assert_fhir_valid(raw)
    assert_fhir_valid(client.execute("Observation", method="get", params={"patient": patient.id, "bogus": 1}))
    page2 = httpx.get(next(link["url"] for link in raw["link"] if link["relation"] == "next")).json()
    assert_fhir_valid(page2)

    again = client.resource("Patient", **{k: v for k, v in new_patient("E2E-1").items() if k != "resourceType"})
    again.create(identifier="urn:oid:2.16.840.1.113883.19.5|E2E-1")  # conditional create: the existing one
    assert again.id == patient.id
    same, created = client.resources("Patient").search(identifier="E2E-1").get_or_create(
        client.resource("Patient", **{k: v for k, v in new_patient("E2E-1").items() if k != "resourceType"})
    )
    assert same.id == patient.id and not created

    bundle = {
        "resourceType": "Bundle", "type": "transaction",
        "entry": [
            {"fullUrl": "urn:uuid:11111111-2222-4333-8444-555555555555", "resource": new_patient("E2E-TX"),
             "request": {"method": "POST", "url": "Patient"}},
            {"resource": new_observation("x", subject={"reference": "urn:uuid:11111111-2222-4333-8444-555555555555"}),
             "request": {"method": "POST", "url": "Observation"}},
        ],
    }
    response = client.execute("", method="post", data=bundle)
    assert response["type"] == "transaction-response"
    assert [e["response"]["status"] for e in response["entry"]] == ["201 Created", "201 Created"]
    assert_fhir_valid(response)
    new_id = response["entry"][0]["response"]["location"].split("/")[1]
    assert_fhir_valid(client.get("Patient", new_id))
    assert_fhir_valid(client.execute(f"Patient/{patient.id}/$everything", method="get"))
    assert_fhir_valid(client.execute(f"Patient/{patient.id}/_history", method="get"))


def test_fhirclient_reads_and_searches_the_demo(server: str, assert_fhir_valid) -> None:
    from fhirclient import client
    from fhirclient.models.medicationadministration import MedicationAdministration
    from fhirclient.models.observation import Observation
    from fhirclient.models.patient import Patient

    smart = client.FHIRClient(settings={"app_id": "e2e", "api_base": server + "/"})
    smart.server.session.headers["Authorization"] = "Bearer " + token("system/*.rs", roles=("ehr-system",), clinic=CLINIC)
    bundle = Patient.where(struct={"_count": "10"}).perform(smart.server)
    assert bundle.total == 1
    assert_fhir_valid(bundle.as_json())
    patient_id = bundle.entry[0].resource.id
    patient = Patient.read(patient_id, smart.server)
    assert patient.id == patient_id and patient.birthDate is not None
    assert_fhir_valid(patient.as_json())
    observations = Observation.where(struct={"patient": patient_id, "category": "vital-signs", "_count": "50"}).perform_resources(smart.server)
    assert observations and all(o.subject.reference == f"Patient/{patient_id}" for o in observations)
    for observation in observations[:5]:
        assert_fhir_valid(observation.as_json())
    administrations = MedicationAdministration.where(struct={"patient": patient_id}).perform(smart.server)
    assert administrations.total and administrations.total >= 1
    assert_fhir_valid(administrations.as_json())
    capability = httpx.get(server + "/metadata").json()
    assert_fhir_valid(capability)
