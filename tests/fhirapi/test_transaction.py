"""transaction (atomic, urn:uuid resolution, FHIR order, conditional entries) and batch."""

from __future__ import annotations

from .conftest import CLINIC, new_observation, new_patient, outcome

H = {"X-Clinic-Id": CLINIC}


def tx(entries: list[dict], kind: str = "transaction") -> dict:
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


def post(resource: dict, full_url: str | None = None, **request) -> dict:
    entry = {"resource": resource, "request": {"method": "POST", "url": resource["resourceType"], **request}}
    if full_url:
        entry["fullUrl"] = full_url
    return entry


def test_transaction_resolves_urn_uuid_and_returns_response_entries(fhir, services) -> None:
    with services.uow() as uow:
        outbox_before = uow.outbox.count()
    patient_url = "urn:uuid:8c1b3e7a-1111-4d7e-9c1a-000000000001"
    bundle = tx([
        post(new_observation("placeholder", subject={"reference": patient_url})),
        post(new_patient("TX-1"), patient_url),
        {"request": {"method": "GET", "url": "Patient?identifier=TX-1"}},
    ])
    response = fhir.post("/fhir", json=bundle, headers=H)
    assert response.status_code == 200, response.text
    result = response.json()
    assert result["type"] == "transaction-response" and len(result["entry"]) == 3
    obs_entry, patient_entry, search_entry = result["entry"]
    assert patient_entry["response"]["status"] == "201 Created"
    patient_id = patient_entry["response"]["location"].split("/")[1]
    assert patient_entry["response"]["etag"] == 'W/"1"' and patient_entry["response"]["lastModified"]
    obs_id = obs_entry["response"]["location"].split("/")[1]
    assert fhir.get(f"/fhir/Observation/{obs_id}").json()["subject"]["reference"] == f"Patient/{patient_id}"
    assert search_entry["response"]["status"] == "200 OK"
    assert search_entry["resource"]["total"] == 1  # GET runs after the writes
    with services.uow() as uow:
        assert uow.outbox.count() == outbox_before + 2


def test_transaction_is_atomic_and_names_the_entry(fhir) -> None:
    bad = new_observation("placeholder", subject={"reference": "urn:uuid:aaaaaaaa-0000-4000-8000-000000000001"})
    bad.pop("code")
    bundle = tx([
        post(new_patient("TX-ATOMIC"), "urn:uuid:aaaaaaaa-0000-4000-8000-000000000001"),
        post(new_observation("x", subject={"reference": "urn:uuid:aaaaaaaa-0000-4000-8000-000000000001"})),
        post(new_observation("x", subject={"reference": "urn:uuid:aaaaaaaa-0000-4000-8000-000000000001"})),
        post(bad),
    ])
    outcome(fhir.post("/fhir", json=bundle, headers=H), 422, expression="Bundle.entry[3].resource.code")
    assert fhir.get("/fhir/Patient?identifier=TX-ATOMIC").json()["total"] == 0  # rolled back


def test_transaction_order_conditionals_and_delete(fhir) -> None:
    first = fhir.post("/fhir/Patient", json=new_patient("TX-C"), headers=H).json()
    doomed = fhir.post("/fhir/Patient", json=new_patient("TX-D"), headers=H).json()
    bundle = tx([
        {"request": {"method": "GET", "url": f"Patient/{doomed['id']}/_history/1"}},
        post(new_patient("TX-C"), "urn:uuid:bbbbbbbb-0000-4000-8000-000000000001", ifNoneExist="identifier=TX-C"),
        post(new_observation("x", subject={"reference": "urn:uuid:bbbbbbbb-0000-4000-8000-000000000001"})),
        {"resource": {**new_patient("TX-E"), "gender": "female"}, "request": {"method": "PUT", "url": "Patient?identifier=TX-E"}},
        {"request": {"method": "DELETE", "url": f"Patient/{doomed['id']}"}},
        {"resource": new_observation("x", subject={"reference": "Patient?identifier=TX-C"}), "request": {"method": "POST", "url": "Observation"}},
    ])
    response = fhir.post("/fhir", json=bundle, headers={**H, "Prefer": "return=representation"})
    assert response.status_code == 200, response.text
    entries = response.json()["entry"]
    assert entries[0]["response"]["status"] == "200 OK" and entries[0]["resource"]["id"] == doomed["id"]
    assert entries[1]["response"]["status"] == "200 OK"  # existing match
    assert entries[1]["response"]["location"].startswith(f"Patient/{first['id']}/")
    assert entries[2]["resource"]["subject"]["reference"] == f"Patient/{first['id']}"
    assert entries[3]["response"]["status"] == "201 Created"
    assert entries[4]["response"]["status"] == "204 No Content"
    assert entries[5]["resource"]["subject"]["reference"] == f"Patient/{first['id']}"
    outcome(fhir.get(f"/fhir/Patient/{doomed['id']}"), 410)


def test_transaction_errors(fhir) -> None:
    outcome(fhir.post("/fhir", json={"resourceType": "Patient"}, headers=H), 400, expression="Bundle")
    outcome(fhir.post("/fhir", json=tx([], "collection"), headers=H), 400, expression="Bundle.type")
    outcome(fhir.post("/fhir", json=tx([{"resource": new_patient()}]), headers=H), 400, expression="Bundle.entry[0].request")
    outcome(fhir.post("/fhir", json=tx([{"request": {"method": "PATCH", "url": "Patient/1"}}]), headers=H), 405)
    outcome(fhir.post("/fhir", json=tx([{"request": {"method": "GET", "url": "Patient/nobody"}}]), headers=H), 404,
            expression="Bundle.entry[0]")
    outcome(fhir.post("/fhir", json=tx([{"request": {"method": "DELETE", "url": "Patient?identifier=x"}}]), headers=H), 405)
    outcome(fhir.post("/fhir", json=tx([{"request": {"method": "POST", "url": "Patient"}}]), headers=H), 400,
            expression="Bundle.entry[0].resource")
    outcome(fhir.post("/fhir", json=tx([{"request": {"method": "GET", "url": "http://elsewhere/fhir/Patient/1"}}]), headers=H), 400)
    dup = {"resource": {**new_patient(), "id": "same"}, "request": {"method": "PUT", "url": "Patient/same"}}
    outcome(fhir.post("/fhir", json=tx([dup, dup]), headers=H), 400, expression="Bundle.entry[1]")
    unresolved = post(new_observation("x", subject={"reference": "Patient?identifier=none-such"}))
    outcome(fhir.post("/fhir", json=tx([unresolved]), headers=H), 412, expression="Bundle.entry[0]")
    outcome(fhir.post("/fhir", json=tx([post(new_patient("Q"), ifNoneExist="nonsense=1")]), headers=H), 400)
    outcome(fhir.get("/fhir"), 405)


def test_batch_entries_are_independent(fhir, demo) -> None:
    bad = new_observation(demo.patient_id)
    bad["status"] = "done"
    bundle = tx([
        post(new_patient("B-1")),
        post(bad),
        {"request": {"method": "GET", "url": f"Patient/{demo.patient_id}"}},
        {"request": {"method": "GET", "url": "Patient/nobody"}},
    ], "batch")
    response = fhir.post("/fhir", json=bundle, headers=H)
    assert response.status_code == 200
    entries = response.json()["entry"]
    assert response.json()["type"] == "batch-response"
    assert entries[0]["response"]["status"] == "201 Created"
    assert entries[1]["response"]["status"].startswith("422")
    issue = entries[1]["response"]["outcome"]["issue"][0]
    assert issue["expression"] == ["Bundle.entry[1].resource.status"]
    assert entries[2]["response"]["status"] == "200 OK"
    assert entries[3]["response"]["status"].startswith("404")
    assert fhir.get("/fhir/Patient?identifier=B-1").json()["total"] == 1
