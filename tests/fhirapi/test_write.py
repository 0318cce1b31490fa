"""create / update / delete / conditional create and update, ETag/If-Match, Prefer, the
clinic rule, validation errors naming the element, and the outbox + source kind."""

from __future__ import annotations

import pytest

from service.usecases.fhir_types import FHIR_SOURCE_KIND

from .conftest import CLINIC, new_observation, new_patient, outcome

H = {"X-Clinic-Id": CLINIC}


def outbox_rows(services) -> list:
    with services.uow() as uow:
        return uow.outbox.after(0, 10_000)


def test_create_read_update_delete_with_outbox_and_source(fhir, services) -> None:
    before = len(outbox_rows(services))
    created = fhir.post("/fhir/Patient", json={**new_patient(), "id": "client-chosen"}, headers=H)
    assert created.status_code == 201
    body = created.json()
    pid = body["id"]
    assert pid != "client-chosen" and len(pid) == 36
    assert created.headers["location"].endswith(f"/fhir/Patient/{pid}/_history/1")
    assert created.headers["etag"] == 'W/"1"'
    assert body["meta"]["versionId"] == "1"
    with services.uow() as uow:
        assert uow.search.source_kind("Patient", pid) == FHIR_SOURCE_KIND
        assert uow.resources.read("Patient", pid).clinic_id == CLINIC
    same = fhir.put(f"/fhir/Patient/{pid}", json=body, headers=H)
    assert same.status_code == 200 and same.headers["etag"] == 'W/"1"'  # no change, no new version
    changed = fhir.put(f"/fhir/Patient/{pid}", json={**body, "gender": "female"}, headers={**H, "If-Match": 'W/"1"'})
    assert changed.status_code == 200 and changed.headers["etag"] == 'W/"2"'
    outcome(fhir.put(f"/fhir/Patient/{pid}", json={**body, "gender": "male"}, headers={**H, "If-Match": 'W/"1"'}), 412)
    assert fhir.delete(f"/fhir/Patient/{pid}").status_code == 204
    assert fhir.delete(f"/fhir/Patient/{pid}").status_code == 204  # again: no-op
    rows = outbox_rows(services)[before:]
    assert [(r.resource_type, r.version_id, r.deleted) for r in rows] == [("Patient", 1, False), ("Patient", 2, False), ("Patient", 3, True)]
    assert all(r.clinic_id == CLINIC for r in rows)
    recreated = fhir.put(f"/fhir/Patient/{pid}", json=body, headers=H)
    assert recreated.status_code == 201 and recreated.headers["etag"] == 'W/"4"'


def test_put_with_client_id_creates_and_clinic_from_body(fhir, demo) -> None:
    body = {**new_patient("EHR-9"), "id": "ehr-9", "managingOrganization": {"reference": f"Organization/{demo.organization_id}"}}
    created = fhir.put("/fhir/Patient/ehr-9", json=body)  # clinic from the managing organization
    assert created.status_code == 201, created.text
    obs = fhir.post("/fhir/Observation", json=new_observation("ehr-9"))  # clinic from the patient
    assert obs.status_code == 201, obs.text
    outcome(fhir.post("/fhir/Patient", json=new_patient("EHR-10")), 400, text="X-Clinic-Id")
    outcome(fhir.post("/fhir/Patient", json=new_patient("EHR-10"), headers={"X-Clinic-Id": "nowhere"}), 400, text="nowhere")


def test_prefer_return(fhir) -> None:
    minimal = fhir.post("/fhir/Patient", json=new_patient("P-1"), headers={**H, "Prefer": "return=minimal"})
    assert minimal.status_code == 201 and minimal.content == b"" and minimal.headers["location"]
    oo = fhir.post("/fhir/Patient", json=new_patient("P-2"), headers={**H, "Prefer": "return=OperationOutcome"})
    assert oo.status_code == 201 and oo.json()["resourceType"] == "OperationOutcome"
    rep = fhir.post("/fhir/Patient", json=new_patient("P-3"), headers={**H, "Prefer": "return=representation"})
    assert rep.json()["resourceType"] == "Patient"
    pid = rep.json()["id"]
    deleted = fhir.delete(f"/fhir/Patient/{pid}", headers={"Prefer": "return=OperationOutcome"})
    assert deleted.status_code == 200 and deleted.json()["resourceType"] == "OperationOutcome"


def test_conditional_create_and_update(fhir) -> None:
    criteria = "identifier=urn:oid:2.16.840.1.113883.19.5|COND-1"
    first = fhir.post("/fhir/Patient", json=new_patient("COND-1"), headers={**H, "If-None-Exist": criteria})
    assert first.status_code == 201
    again = fhir.post("/fhir/Patient", json=new_patient("COND-1"), headers={**H, "If-None-Exist": criteria})
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    fhir.put("/fhir/Patient/dup-a", json={**new_patient("DUP"), "id": "dup-a"}, headers=H)
    fhir.put("/fhir/Patient/dup-b", json={**new_patient("DUP"), "id": "dup-b"}, headers=H)
    outcome(fhir.post("/fhir/Patient", json=new_patient("DUP"), headers={**H, "If-None-Exist": "identifier=DUP"}), 412)
    outcome(fhir.post("/fhir/Patient", json=new_patient("X"), headers={**H, "If-None-Exist": "bogus=1"}), 400)
    updated = fhir.put(f"/fhir/Patient?{criteria}", json={**new_patient("COND-1"), "gender": "female"}, headers=H)
    assert updated.status_code == 200 and updated.json()["id"] == first.json()["id"] and updated.json()["gender"] == "female"
    created = fhir.put("/fhir/Patient?identifier=urn:x|NEW-1", json=new_patient("NEW-1"), headers=H)
    assert created.status_code == 201
    outcome(fhir.put("/fhir/Patient?identifier=DUP", json=new_patient("DUP"), headers=H), 412)
    outcome(fhir.put("/fhir/Patient", json=new_patient("DUP"), headers=H), 400)


@pytest.mark.parametrize(
    ("mutate", "expression"),
    [
        (lambda o: o.pop("code"), "Observation.code"),
        (lambda o: o.update(status="done"), "Observation.status"),
        (lambda o: o.pop("status"), "Observation.status"),
        (lambda o: o.update(subject={"reference": "Patient/nobody"}), "Observation.subject"),
        (lambda o: o.update(subject={"reference": "Group/1"}), "Observation.subject"),
        (lambda o: o.pop("subject"), "Observation.subject"),
        (lambda o: o.update(effectiveDateTime="2026-13-45"), "Observation.effectiveDateTime"),
        (lambda o: o.update(valueQuantity={"value": "lots"}), "Observation.valueQuantity.value"),
        (lambda o: o.update(colour="blue"), "Observation.colour"),
        (lambda o: o["code"]["coding"][0].update(system=5), "Observation.code.coding[0].system"),
    ],
)
def test_invalid_observation_is_422_naming_the_element(fhir, demo, mutate, expression: str) -> None:
    body = new_observation(demo.patient_id)
    mutate(body)
    outcome(fhir.post("/fhir/Observation", json=body, headers=H), 422, expression=expression)


def test_other_write_errors(fhir, demo) -> None:
    outcome(fhir.post("/fhir/Patient", json={**new_patient(), "identifier": []}, headers=H), 422, expression="Patient.identifier")
    outcome(fhir.post("/fhir/Coverage", json={"resourceType": "Coverage", "status": "active"}, headers=H), 422, expression="Coverage.beneficiary")
    outcome(fhir.post("/fhir/Patient", json={"resourceType": "Observation"}, headers=H), 400, expression="resourceType")
    outcome(fhir.post("/fhir/Patient", json=[1, 2], headers=H), 400)
    outcome(fhir.post("/fhir/Patient", content=b"{not json", headers={**H, "Content-Type": "application/fhir+json"}), 400)
    outcome(fhir.post("/fhir/Patient", content=b"", headers={**H, "Content-Type": "application/fhir+json"}), 400)
    outcome(fhir.post("/fhir/Patient", content=b"<Patient/>", headers={**H, "Content-Type": "application/fhir+xml"}), 415)
    outcome(fhir.post("/fhir/Patient", content=b"{}", headers=H), 415)
    outcome(fhir.post("/fhir/Encounter", json={"resourceType": "Encounter"}, headers=H), 405)
    outcome(fhir.post("/fhir/Unicorn", json={"resourceType": "Unicorn"}, headers=H), 404)
    outcome(fhir.put("/fhir/Patient/a", json={**new_patient(), "id": "b"}, headers=H), 400, expression="Patient.id")
    outcome(fhir.put("/fhir/Patient/a", json=new_patient(), headers=H), 400, expression="Patient.id")
    outcome(fhir.put(f"/fhir/Patient/{demo.patient_id}", json={**new_patient(), "id": demo.patient_id}, headers=H), 409)
    outcome(fhir.delete(f"/fhir/Patient/{demo.patient_id}"), 409)
    outcome(fhir.delete("/fhir/Patient/nobody"), 404)
    outcome(fhir.delete("/fhir/Encounter/x"), 405)
    outcome(fhir.put("/fhir/Patient/new-one", json={**new_patient(), "id": "new-one"}, headers={**H, "If-Match": 'W/"1"'}), 412)
    outcome(fhir.put("/fhir/Patient/new-one", json={**new_patient(), "id": "new-one"}, headers={**H, "If-Match": "nonsense"}), 412)


def test_coverage_and_questionnaire_response_can_be_written(fhir, demo) -> None:
    coverage = {
        "resourceType": "Coverage", "status": "active", "beneficiary": {"reference": f"Patient/{demo.patient_id}"},
        "payor": [{"display": "Acme Health"}], "identifier": [{"system": "urn:acme", "value": "M-1"}],
    }
    created = fhir.post("/fhir/Coverage", json=coverage)
    assert created.status_code == 201, created.text
    assert fhir.get(f"/fhir/Coverage?patient={demo.patient_id}").json()["total"] == 1
    answers = {
        "resourceType": "QuestionnaireResponse", "status": "completed", "subject": {"reference": f"Patient/{demo.patient_id}"},
        "authored": "2026-05-02T09:00:00Z", "item": [{"linkId": "1", "answer": [{"valueInteger": 2}]}],
    }
    assert fhir.post("/fhir/QuestionnaireResponse", json=answers, headers=H).status_code == 201
