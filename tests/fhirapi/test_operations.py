"""CapabilityStatement, $validate, Patient/$everything, and errors that are never 500s."""

from __future__ import annotations

import logging

import pytest

from service.usecases.fhir_types import READ_TYPES, WRITE_TYPES

from .conftest import new_observation, new_patient, outcome


def test_capability_statement_is_generated_from_the_registry(fhir) -> None:
    cs = fhir.get("/fhir/metadata").json()
    assert cs["resourceType"] == "CapabilityStatement"
    assert (cs["status"], cs["kind"], cs["fhirVersion"]) == ("active", "instance", "4.0.1")
    assert "json" in cs["format"] and cs["implementation"]["url"].endswith("/fhir")
    rest = cs["rest"][0]
    assert {i["code"] for i in rest["interaction"]} == {"transaction", "batch"}
    by_type = {r["type"]: r for r in rest["resource"]}
    assert set(by_type) == set(READ_TYPES)
    for resource_type, entry in by_type.items():
        codes = {i["code"] for i in entry["interaction"]}
        assert {"read", "vread", "search-type", "history-instance", "history-type"} <= codes
        assert ({"create", "update", "delete"} <= codes) == (resource_type in WRITE_TYPES)
        assert {"_id", "_lastUpdated"} <= {p["name"] for p in entry["searchParam"]}
        assert any(op["name"] == "validate" for op in entry["operation"])
    assert "Observation:patient" in by_type["Observation"]["searchInclude"]
    assert any(op["name"] == "everything" for op in by_type["Patient"]["operation"])
    assert {"code", "date", "patient", "encounter"} <= {p["name"] for p in by_type["Observation"]["searchParam"]}


def test_validate_operation(fhir, demo) -> None:
    good = fhir.post("/fhir/Observation/$validate", json=new_observation(demo.patient_id))
    assert good.status_code == 200
    assert all(i["severity"] not in ("error", "fatal") for i in good.json()["issue"])
    bad = new_observation(demo.patient_id)
    bad.pop("code")
    result = fhir.post("/fhir/Observation/$validate", json=bad)
    assert result.status_code == 200
    assert any("Observation.code" in e for i in result.json()["issue"] for e in i.get("expression", []))
    params = {"resourceType": "Parameters", "parameter": [
        {"name": "resource", "resource": new_patient()},
        {"name": "profile", "valueUri": "http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"},
    ]}
    answered = fhir.post("/fhir/Patient/$validate", json=params).json()
    assert any("not checked" in i["diagnostics"] for i in answered["issue"])  # no HL7 validator configured
    wrong = fhir.post("/fhir/Patient/$validate", json=new_observation(demo.patient_id)).json()
    assert wrong["issue"][0]["severity"] == "error"
    outcome(fhir.post("/fhir/Patient/$validate", json={"resourceType": "Parameters", "parameter": []}), 400)
    outcome(fhir.post("/fhir/Unicorn/$validate", json={"resourceType": "Unicorn"}), 404)
    outcome(fhir.post("/fhir/Patient/$validate?mode=sideways", json=new_patient()), 400)


def test_validate_with_the_hl7_validator(fhir, fhir_validator, demo) -> None:
    fhir.app.state.fhir_profile_validator = fhir_validator
    bad = new_patient()
    bad["gender"] = "sometimes"
    result = fhir.post("/fhir/Patient/$validate", json=bad).json()
    assert any(i["severity"] == "error" and "gender" in str(i.get("expression")) for i in result["issue"]), result
    good = fhir.post("/fhir/Observation/$validate", json=new_observation(demo.patient_id)).json()
    assert not [i for i in good["issue"] if i["severity"] in ("error", "fatal")], good


def test_patient_everything_pages_and_includes(fhir, demo) -> None:
    url = f"/fhir/Patient/{demo.patient_id}/$everything?_count=20"
    matched, included = [], set()
    while url:
        page = fhir.get(url).json()
        assert page["type"] == "searchset"
        for entry in page["entry"]:
            key = (entry["resource"]["resourceType"], entry["resource"]["id"])
            (matched.append(key) if entry["search"]["mode"] == "match" else included.add(key[0]))
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
    assert len(matched) == len(set(matched))
    assert ("Patient", demo.patient_id) in matched
    types = {t for t, _ in matched}
    assert {"Observation", "MedicationAdministration", "Encounter", "QuestionnaireResponse"} <= types
    assert {"Practitioner", "Organization", "Medication"} <= included
    outcome(fhir.get("/fhir/Patient/nobody/$everything"), 404)
    outcome(fhir.get(f"/fhir/Patient/{demo.patient_id}/$everything?_count=x"), 400)
    strict = fhir.get(f"/fhir/Patient/{demo.patient_id}/$everything?start=2020", headers={"Prefer": "handling=strict"})
    outcome(strict, 400)


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/fhir/Patient/x/y/z/w"), ("PATCH", "/fhir/Patient/x"), ("GET", "/fhir/Patient/x/$everything/more")],
)
def test_unknown_routes_are_operation_outcomes(fhir, method: str, path: str) -> None:
    response = fhir.request(method, path)
    assert response.status_code in (404, 405)
    assert response.json()["resourceType"] == "OperationOutcome"


def test_body_too_large_is_an_outcome(services) -> None:
    from fastapi.testclient import TestClient

    from service.api import create_app
    from service.config import Settings
    from service.usecases import Services

    small = Services(settings=Settings(database_url=services.settings.database_url, max_record_bytes=1024))
    with TestClient(create_app(services=small), raise_server_exceptions=False) as client:
        response = client.post("/fhir/Patient", content=b"{" + b" " * 5000 + b"}", headers={"Content-Type": "application/fhir+json"})
        outcome(response, 413)
    small.close()


FUZZ = [
    ("GET", "/fhir/Observation?date=ge2026-02-30T10:00:00Z"), ("GET", "/fhir/Observation?date=ge99999"),
    ("GET", "/fhir/Observation?_lastUpdated=eq0000-01-01"), ("GET", "/fhir/Observation?_count=99999999999999999999"),
    ("GET", "/fhir/Observation?patient="), ("GET", "/fhir/Observation?patient=%00"), ("GET", "/fhir/Observation?code=%7C%7C%7C"),
    ("GET", "/fhir/Observation?_sort=,,,"), ("GET", "/fhir/Observation?_include=::"), ("GET", "/fhir/Patient/%00"),
    ("GET", "/fhir/Patient/a/_history/99999999999999999999"), ("GET", "/fhir/Observation?date=2026-01-01T10:00:00+99:00"),
    ("GET", "/fhir/Observation?_cursor=WyJuIixbe31dXQ"), ("GET", "/fhir/Observation?_cursor=WyJuIixbMSwyLDMsNF1d"),
    ("GET", "/fhir/Observation?subject=http://x/fhir/Patient/1"), ("GET", "/fhir/Observation?encounter=/"),
    ("GET", "/fhir/Provenance?target=abc"), ("POST", "/fhir/Observation/_search?code=%00"), ("GET", "/fhir/Observation/_history?_since=2026-01-01T00:00:00Z&_count=0"),
]


@pytest.mark.parametrize(("method", "path"), FUZZ)
def test_odd_input_never_causes_a_500(fhir, method: str, path: str, caplog) -> None:
    with caplog.at_level(logging.ERROR):
        response = fhir.request(method, path)
    assert response.status_code < 500, response.text
    assert not [r for r in caplog.records if "unhandled" in r.getMessage()]


BODIES = [
    b'{"resourceType":"Patient","identifier":[{"system":"a","value":"\\u0000"}]}',
    b'{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"GET","url":"Patient?identifier=%00"}}]}',
    b"null", b"1", b'"x"', b"[]", b"{}", b'{"resourceType":null}', b'{"resourceType":"Patient","identifier":"x"}',
    b'{"resourceType":"Patient","identifier":[{"system":"a","value":"b"}],"name":{"family":1}}',
    b'{"resourceType":"Observation","status":"final","code":{},"subject":{"reference":"Patient/a"},"component":[1]}',
    b'{"resourceType":"Patient","meta":"x","identifier":[{"system":"a","value":"b"}]}',
    b'{"resourceType":"Patient","id":5,"identifier":[{"system":"a","value":"b"}]}',
    b'{"resourceType":"Bundle","type":"transaction","entry":[1,{"request":1},{"request":{"method":5,"url":"x"}}]}',
    b'{"resourceType":"Bundle","type":"transaction","entry":"x"}',
    b'{"resourceType":"Bundle","type":"batch","entry":[{"request":{"method":"PUT","url":"Patient"}}]}',
    b'{"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"GET","url":"/"}}]}',
]


@pytest.mark.parametrize("path", ["/fhir/Patient", "/fhir/Observation", "/fhir", "/fhir/Patient/$validate", "/fhir/Patient/a"])
def test_odd_bodies_never_cause_a_500(fhir, path: str) -> None:
    method = "PUT" if path.endswith("/a") else "POST"
    for body in BODIES:
        response = fhir.request(method, path, content=body, headers={"Content-Type": "application/fhir+json", "X-Clinic-Id": "riverbend"})
        assert response.status_code < 500, (body, response.text)
        assert response.json()["resourceType"] in ("OperationOutcome", "Bundle", "Patient", "Observation")


def test_patient_code_date_search_is_one_indexed_query(services, demo, database_url: str) -> None:
    """EXPLAIN on PostgreSQL (sequential scans disabled, so the plan shows which indexes CAN
    answer it): the hot query uses the patient index and the token index, no Seq Scan."""
    if not database_url.startswith("postgresql"):
        pytest.skip("EXPLAIN plan check is for PostgreSQL")
    import sqlalchemy as sa

    from service.store.fhir_search import FhirSearchRepository
    from service.usecases.fhir_search import parse_search

    parsed = parse_search("Observation", [("patient", demo.patient_id), ("code", "http://loinc.org|8867-4"), ("date", "ge2026-03-01")])
    with services.engine.connect() as connection:
        connection.execute(sa.text("SET enable_seqscan = off"))
        statement = FhirSearchRepository(None).statement(parsed.spec, limit=51)  # type: ignore[arg-type]
        compiled = statement.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
        plan = "\n".join(r[0] for r in connection.exec_driver_sql("EXPLAIN " + str(compiled), compiled.params))
    assert "Seq Scan" not in plan, plan
    assert "ix_fhir_resource_patient" in plan or "fhir_resource_pkey" in plan, plan
    assert "ix_fhir_search_token" in plan or "fhir_search_token_pkey" in plan, plan
