"""The domain REST API over HTTP (FastAPI TestClient), on every backend: create / update /
read / list per kind, duplicates, every kind of bad input as a problem document naming the
fields, never a 500, imports, course summary, and the committed OpenAPI document."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterator

import orjson
import pytest
from fastapi.testclient import TestClient

from tests.tokens import authorize
from service.__main__ import render_openapi
from service.api import create_app
from service.config import Settings
from service.domain.records import RECORD_KINDS
from service.usecases import Services
from tests import factories as f

PROBLEM = "application/problem+json"
SETUP = ("clinics", "practitioners", "locations", "patients", "enrollments", "administration-sessions")


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    services = Services(settings=Settings(database_url=database_url))
    services.migrate()
    with TestClient(create_app(services=services), raise_server_exceptions=False) as test_client:
        yield authorize(test_client)
    services.close()


@pytest.fixture
def seeded(client: TestClient) -> TestClient:
    for kind in SETUP:
        response = client.put(f"/api/v1/{kind}/{f.FACTORIES[kind]()['id']}", json=f.FACTORIES[kind]())
        assert response.status_code == 201, response.text
    return client


def assert_problem(response, status: int, fields: set[str] | None = None) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert {"type", "title", "status"} <= body.keys() and body["status"] == status
    if fields is not None:
        assert {e["field"] for e in body["errors"]} == fields, body
    return body


@pytest.mark.parametrize("kind", list(RECORD_KINDS))
def test_create_read_update_list_each_kind(client: TestClient, kind: str) -> None:
    for dependency, factory in f.FACTORIES.items():
        if dependency == kind:
            break
        assert client.put(f"/api/v1/{dependency}/{factory()['id']}", json=factory()).status_code == 201
    payload = f.FACTORIES[kind]()
    key, clinic = payload["id"], payload["clinic_id"]

    created = client.post(f"/api/v1/{kind}", json=payload)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "created" and body["version"] == 1 and body["record"]["id"] == key
    assert body["fhir"] and all({"resourceType", "id", "versionId"} <= r.keys() for r in body["fhir"])

    again = client.put(f"/api/v1/{kind}/{key}", json=payload)
    assert (again.status_code, again.json()["status"]) == (200, "unchanged")

    read = client.get(f"/api/v1/{kind}/{key}", params={"clinic_id": clinic})
    assert read.status_code == 200 and read.json()["record"] == body["record"]

    listed = client.get(f"/api/v1/{kind}", params={"clinic_id": clinic})
    assert listed.status_code == 200 and [i["record"]["id"] for i in listed.json()["items"]] == [key]

    preview = client.post(f"/api/v1/{kind}/$preview", json=payload)
    assert preview.status_code == 200 and preview.json()["resourceType"] == "Bundle"


def test_update_by_put_and_path_key_rules(seeded: TestClient) -> None:
    changed = f.patient(family_name="Smith")
    response = seeded.put("/api/v1/patients/pat-1", json=changed)
    assert (response.status_code, response.json()["status"], response.json()["version"]) == (200, "updated", 2)
    without_id = f.diagnosis(id=...)
    assert seeded.put("/api/v1/diagnoses/dx-7", json=without_id).json()["record"]["id"] == "dx-7"
    assert_problem(seeded.put("/api/v1/diagnoses/dx-8", json=f.diagnosis()), 422, {"id"})


def test_idempotency_key_and_business_key_prevent_duplicates(seeded: TestClient) -> None:
    headers = {"Idempotency-Key": "7f1c-retry"}
    first = seeded.post("/api/v1/diagnoses", json=f.diagnosis(), headers=headers)
    second = seeded.post("/api/v1/diagnoses", json=f.diagnosis(), headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert_problem(seeded.post("/api/v1/diagnoses", json=f.diagnosis(note="other"), headers=headers), 409)

    again = seeded.post("/api/v1/diagnoses", json=f.diagnosis())
    assert (again.status_code, again.json()["status"]) == (200, "unchanged")
    assert_problem(seeded.post("/api/v1/diagnoses", json=f.diagnosis(note="different")), 409, {"id"})
    listed = seeded.get("/api/v1/diagnoses", params={"clinic_id": "clinic-1"}).json()["items"]
    assert [i["record"]["id"] for i in listed] == ["dx-1"]
    assert listed[0]["version"] == 1


@pytest.mark.parametrize(
    ("kind", "payload", "fields"),
    [
        ("questionnaire-responses", f.phq9(answers={**f.phq9()["answers"], "9": 5}), {"answers.9"}),
        ("questionnaire-responses", f.phq9(answers={**f.phq9()["answers"], "9": "x"}), {"answers.9"}),
        ("patients", f.patient(sex="robot", birth_date="1850-01-01"), {"sex", "birth_date"}),
        ("patients", f.patient(shoe_size=44), {"shoe_size"}),
        ("practitioners", f.practitioner(npi="1234567890"), {"npi"}),
        ("administration-sessions", f.administration_session(started_at="2026-03-02T09:00:00"), {"started_at"}),
        ("administration-sessions", f.administration_session(route="intranasal"), {"route"}),
        ("patients", f.patient(id="bad key!"), {"id"}),
        ("patients", {**f.patient(), "address": {"state": "Massachusetts"}}, {"address.state"}),
    ],
)
def test_invalid_values_and_unknown_fields_are_422_naming_fields(seeded: TestClient, kind, payload, fields) -> None:
    body = assert_problem(seeded.post(f"/api/v1/{kind}", json=payload), 422, fields)
    assert "body" not in str([e["field"] for e in body["errors"]])


def test_unknown_codes_and_missing_references(seeded: TestClient) -> None:
    assert_problem(seeded.post("/api/v1/medication-trials", json=f.medication_trial(drug="snake_oil")), 422, {"drug"})
    assert_problem(seeded.post("/api/v1/diagnoses", json=f.diagnosis(icd10="Q99.9")), 422, {"icd10"})
    assert_problem(seeded.post("/api/v1/adverse-events", json=f.adverse_event(event="sparkles")), 422, {"event"})
    body = assert_problem(seeded.post("/api/v1/vitals", json=f.vitals(session_id="sess-404")), 422, {"session_id"})
    assert body["type"].endswith("missing-reference")
    assert_problem(seeded.post("/api/v1/patients", json=f.patient(clinic_id="clinic-404")), 422, {"clinic_id"})


def test_transport_errors(seeded: TestClient) -> None:
    assert_problem(seeded.post("/api/v1/patients", content=b'{"id": "p",', headers={"content-type": "application/json"}), 400)
    assert_problem(seeded.post("/api/v1/patients", content=b"", headers={"content-type": "application/json"}), 400)
    assert_problem(seeded.post("/api/v1/patients", content=b"[1, 2]", headers={"content-type": "application/json"}), 422)
    assert_problem(seeded.post("/api/v1/patients", content=b"id=1", headers={"content-type": "text/plain"}), 415,
                   {"Content-Type"})
    assert_problem(seeded.post("/api/v1/patients", content=b"{}"), 415)
    big = b'{"id": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    assert_problem(seeded.post("/api/v1/patients", content=big, headers={"content-type": "application/json"}), 413)

    def chunks():  # no Content-Length: counted while streaming
        for _ in range(20):
            yield b" " * 65536

    assert_problem(seeded.post("/api/v1/patients", content=chunks(), headers={"content-type": "application/json"}), 413)
    assert_problem(seeded.get("/api/v1/unicorns"), 404)
    assert_problem(seeded.post("/api/v1/unicorns", json={}), 404)
    assert_problem(seeded.delete("/api/v1/patients/pat-1"), 405)
    assert_problem(seeded.get("/api/v1/patients/pat-404", params={"clinic_id": "clinic-1"}), 404)
    assert_problem(seeded.get("/api/v1/patients/pat-1"), 422, {"clinic_id"})
    assert_problem(seeded.get("/api/v1/patients", params={"clinic_id": "clinic-1", "limit": 0}), 422, {"limit"})
    assert_problem(seeded.get("/api/v1/patients", params={"clinic_id": "clinic-1", "cursor": "%%%"}), 422, {"cursor"})


ODD_BODIES = [
    b"null", b"true", b'"text"', b"1e999", b'{"id": null}', b'{"id": {"$gt": ""}}', b"\xff\xfe", b'{"": 1}',
    b'{"answers": {"1": 1e308}}', b'{"id": "a", "clinic_id": "' + b"c" * 5000 + b'"}', b"[" * 5000,
    orjson.dumps({**f.phq9(), "answers": {"99": 1}}), orjson.dumps({**f.administration_session(), "dose_mg": "NaN"}),
    orjson.dumps({**f.administration_session(), "premedications": [{"drug": 1}] * 10}),
]


def test_no_input_produces_a_500(seeded: TestClient) -> None:
    for kind in ("patients", "questionnaire-responses", "administration-sessions"):
        for body in ODD_BODIES:
            for method, path in (
                ("POST", f"/api/v1/{kind}"), ("PUT", f"/api/v1/{kind}/k-1"), ("POST", f"/api/v1/{kind}/$preview")
            ):
                response = seeded.request(method, path, content=body, headers={"content-type": "application/json"})
                assert 400 <= response.status_code < 500, (method, path, body[:40], response.text)
                assert response.headers["content-type"].startswith(PROBLEM)
    for query in ("limit=-1", "limit=abc", "clinic_id=" + "x" * 300, "patient_id=%00", "cursor=" + "A" * 500):
        response = seeded.get(f"/api/v1/vitals?clinic_id=clinic-1&{query}")
        assert 400 <= response.status_code < 500, (query, response.text)


def test_unexpected_errors_are_500_problems_without_internals(seeded: TestClient, monkeypatch, caplog) -> None:
    from service.api import records as records_api

    def explode(*args, **kwargs):
        raise RuntimeError("patient Jamie Doe MRN-0001 broke it")

    monkeypatch.setattr(records_api, "get_record", explode)
    with caplog.at_level(logging.ERROR, logger="service.api"):
        response = seeded.get("/api/v1/patients/pat-1", params={"clinic_id": "clinic-1"})
    body = assert_problem(response, 500)
    assert "Jamie" not in response.text and "RuntimeError" not in response.text
    assert "RuntimeError" in caplog.text and "Jamie" not in caplog.text and "MRN-0001" not in caplog.text
    assert body["instance"].startswith("urn:uuid:")


def test_import_ndjson_and_csv_with_a_bad_row(seeded: TestClient) -> None:
    ndjson = b"\n".join(
        [orjson.dumps(f.diagnosis(id="dx-a")), orjson.dumps(f.diagnosis(id="dx-b", icd10="nope")), orjson.dumps(f.diagnosis(id="dx-c"))]
    )
    report = seeded.post("/api/v1/import/diagnoses", content=ndjson, headers={"content-type": "application/x-ndjson"})
    assert report.status_code == 200, report.text
    doc = report.json()
    assert (doc["total"], doc["created"], doc["error"]) == (3, 2, 1)
    assert doc["rows"][1]["row"] == 2 and [e["field"] for e in doc["rows"][1]["errors"]] == ["icd10"]
    assert seeded.get("/api/v1/diagnoses/dx-b", params={"clinic_id": "clinic-1"}).status_code == 404

    csv = (
        "id,clinic_id,patient_id,session_id,taken_at,phase,systolic_mmhg,diastolic_mmhg,heart_rate_bpm\n"
        "v-1,clinic-1,pat-1,sess-1,2026-03-02T08:50:00-05:00,pre-dose,120,80,70\n"
        "v-2,clinic-1,pat-1,sess-1,2026-03-02T09:50:00-05:00,post-dose,120,,70\n"
        "v-3,clinic-1,pat-1,sess-1,2026-03-02T10:50:00-05:00,pre-discharge,,,66\n"
    )
    doc = seeded.post("/api/v1/import/vitals", content=csv, headers={"content-type": "text/csv"}).json()
    assert [r["status"] for r in doc["rows"]] == ["created", "error", "created"]
    assert doc["rows"][1]["errors"][0]["field"] == "systolic_mmhg"
    assert_problem(seeded.post("/api/v1/import/vitals", content=csv, headers={"content-type": "application/json"}), 415)
    assert_problem(seeded.post("/api/v1/import/unicorns", content=csv, headers={"content-type": "text/csv"}), 404)


def test_course_summary_and_health(seeded: TestClient) -> None:
    assert seeded.post("/api/v1/questionnaire-responses", json=f.phq9()).status_code == 201
    summary = seeded.get("/api/v1/clinics/clinic-1/patients/pat-1/course-summary")
    assert summary.status_code == 200, summary.text
    assert summary.json()["sessions"][0]["id"] == "sess-1"
    assert summary.json()["scores"]["phq9"]["responses"][0]["total"] == 17
    assert_problem(seeded.get("/api/v1/clinics/clinic-1/patients/nobody/course-summary"), 404)
    assert seeded.get("/health").json() == {"status": "ok", "database": "ok"}


def test_committed_openapi_document_matches_the_code(client: TestClient) -> None:
    committed = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"
    generated = create_app(Settings(database_url="sqlite:///:memory:")).openapi()
    assert committed.read_text(encoding="utf-8") == render_openapi(generated), (
        "openapi/openapi.json is out of date: run `python -m service openapi`"
    )
    assert client.get("/openapi.json").json() == orjson.loads(committed.read_bytes())
    operation_ids = {op["operationId"] for path in generated["paths"].values() for op in path.values()}
    assert {"put_administration_sessions", "create_patients", "list_vitals", "preview_questionnaire_responses",
            "course_summary", "import_records"} <= operation_ids
    body = generated["paths"]["/api/v1/patients"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/Patient"}
    assert "mrn" in generated["components"]["schemas"]["Patient"]["properties"]
