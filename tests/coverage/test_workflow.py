"""Coverage workflow end to end: demo patient + coverage -> pre-check -> PAS $submit to the
sandbox payer (a real process) -> pended -> $inquire -> approved -> sessions counted against
the authorized units -> re-authorization warning; denial paths with their reasons; claim
documentation and REMS status; every FHIR message judged by the HL7 validator."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from fastapi.testclient import TestClient

from tests.tokens import authorize
from service.api import create_app
from service.coverage.client import PayerClient
from service.usecases import coverage as uc
from service.usecases import put_record

from .conftest import coverage_payload

PAS = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/"


def _endpoints(base: str) -> dict[str, str]:
    return {"acme-commercial": base, "medicare-demo": base}


def test_precheck_lists_every_criterion_with_links(services) -> None:
    put_record(services.uow(), "coverages", coverage_payload())
    result = uc.precheck(services.uow(), "riverbend", "pt-0001", "iv-ketamine-series")
    assert result["status"] == "ready"
    by_key = {c["key"]: c for c in result["criteria"]}
    assert by_key["baseline_severity"]["status"] == "met" and "PHQ9 19" in by_key["baseline_severity"]["evidence"]
    assert by_key["treatment_resistance"]["status"] == "met"
    assert by_key["rems"]["status"] == "not-applicable"
    link = by_key["treatment_resistance"]["links"][0]
    assert link["api"].startswith("/api/v1/medication-trials/") and link["fhir"][0].startswith("MedicationRequest/")


def test_precheck_shows_what_is_missing(services) -> None:
    put_record(services.uow(), "coverages", coverage_payload())
    for index in (1, 2):  # the two failed trials become "response": no treatment resistance
        trial = services.uow()
        from service.usecases import get_record

        record = get_record(trial, "medication-trials", f"pt-0001-trial-{index}", "riverbend").record
        put_record(services.uow(), "medication-trials", {**record, "outcome": "response"})
    result = uc.precheck(services.uow(), "riverbend", "pt-0001", "iv-ketamine-series", as_of=dt.date(2026, 5, 1))
    by_key = {c["key"]: c for c in result["criteria"]}
    assert result["status"] == "incomplete"
    assert by_key["treatment_resistance"]["status"] == "missing"
    assert by_key["baseline_severity"]["status"] == "missing"  # PHQ-9 >= 15 only within 30 days


def test_pas_flow_pended_inquired_approved_counted_and_renewal(services, sandbox_pending, clock, assert_fhir_valid) -> None:
    put_record(services.uow(), "coverages", coverage_payload())
    endpoints = _endpoints(sandbox_pending)
    eligibility = uc.check_eligibility(services.uow_factory, PayerClient, "riverbend", "pt-0001", "iv-ketamine-series",
                                       endpoints=endpoints)
    assert eligibility["summary"]["inforce"] is True
    assert eligibility["summary"]["benefits"][0]["authorization_required"] is True
    assert_fhir_valid(eligibility["request"])

    created = uc.create_prior_auth(services.uow(), "riverbend", "pt-0001", "iv-ketamine-series", start=dt.date(2026, 3, 2))
    bundle = uc.prior_auth_bundle(services.uow(), created["id"])
    assert bundle["type"] == "collection" and bundle["entry"][0]["resource"]["resourceType"] == "Claim"
    claim = bundle["entry"][0]["resource"]
    assert claim["use"] == "preauthorization" and claim["insurance"][0]["focal"] is True
    refs = {f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in bundle["entry"]}
    assert {i["valueReference"]["reference"] for i in claim["supportingInfo"] if "valueReference" in i} <= refs
    assert_fhir_valid(bundle)
    for entry in bundle["entry"]:
        if entry["resource"]["resourceType"] in ("Claim", "Coverage"):
            assert_fhir_valid(entry["resource"])

    submitted = uc.submit_prior_auth(services.uow_factory, PayerClient, created["id"], endpoints)
    assert submitted["status"] == "pended"
    assert {i["review_action"] for i in submitted["decision"]["items"]} == {"A4"}
    pended = uc.worklist(services.uow(), "riverbend", "pended")
    assert [i["id"] for i in pended["items"]] == [created["id"]]
    inquiry = uc.prior_auth_exchanges(services.uow(), created["id"])
    assert [e["operation"] for e in inquiry] == ["submit"]

    approved = uc.inquire_prior_auth(services.uow_factory, PayerClient, created["id"], endpoints)
    assert approved["status"] == "approved" and approved["preauth_ref"]
    assert approved["period"] == {"start": "2026-03-02", "end": "2026-04-30"}
    assert {(i["code"], i["authorized_units"]) for i in approved["decision"]["items"]} == {("96365", 6), ("J3490", 6)}
    exchanges = uc.prior_auth_exchanges(services.uow(), created["id"])
    assert [e["operation"] for e in exchanges] == ["submit", "inquire"]
    assert_fhir_valid(exchanges[1]["request"])  # the PAS inquiry Bundle

    # after 4 of 6 sessions: no warning yet; after all 6: re-authorization warning
    mid = uc.authorization_usage(services.uow(), "riverbend", "pt-0001", today=dt.date(2026, 3, 10))
    assert mid["authorizations"][0]["sessions"] == {"authorized": 6, "used": 3, "left": 3}
    assert mid["authorizations"][0]["warnings"] == []
    late = uc.authorization_usage(services.uow(), "riverbend", "pt-0001", today=dt.date(2026, 3, 20))
    usage = late["authorizations"][0]
    assert usage["sessions"] == {"authorized": 6, "used": 6, "left": 0}
    assert usage["warnings"][0]["kind"] == "units" and usage["needs_renewal"] is True
    assert {c["code"]: c["used_units"] for c in usage["codes"]} == {"96365": 6, "J3490": 6}
    assert uc.worklist(services.uow(), "riverbend", today=dt.date(2026, 3, 20))["counts"] == {"expiring": 1}

    clock.moment = dt.datetime(2026, 3, 20, 15, tzinfo=dt.timezone.utc)
    renewal = uc.create_prior_auth(services.uow(), "riverbend", "pt-0001", "iv-ketamine-series", renewal_of=created["id"])
    assert renewal["certification_type"] == "R" and renewal["replaces"] == created["id"]
    renewal_bundle = uc.prior_auth_bundle(services.uow(), renewal["id"])
    renewal_claim = renewal_bundle["entry"][0]["resource"]
    certification = {e["valueCodeableConcept"]["coding"][0]["code"] for i in renewal_claim["item"] for e in i["extension"]
                     if e["url"].endswith("certificationType")}
    assert certification == {"R"}
    messages = " ".join(i.get("valueString", "") for i in renewal_claim["supportingInfo"])
    assert approved["preauth_ref"] in messages
    qr_refs = [i["valueReference"]["reference"] for i in renewal_claim["supportingInfo"]
               if i.get("valueReference", {}).get("reference", "").startswith("QuestionnaireResponse/")]
    assert len(qr_refs) >= 3  # baseline and latest outcome scores travel as evidence
    assert_fhir_valid(renewal_bundle)


def test_medicare_denies_iv_ketamine_with_its_reason(services, sandbox_direct) -> None:
    put_record(services.uow(), "coverages", coverage_payload("medicare-demo", key="cov-mcr"))
    check = uc.precheck(services.uow(), "riverbend", "pt-0001", "iv-ketamine-series", "cov-mcr")
    assert check["status"] == "not-covered" and "off-label" in check["not_covered_reason"]
    created = uc.create_prior_auth(services.uow(), "riverbend", "pt-0001", "iv-ketamine-series", "cov-mcr", dt.date(2026, 3, 2))
    denied = uc.submit_prior_auth(services.uow_factory, PayerClient, created["id"], _endpoints(sandbox_direct))
    assert denied["status"] == "denied"
    assert {i["review_action"] for i in denied["decision"]["items"]} == {"A3"}
    assert any("off-label" in r for i in denied["decision"]["items"] for r in i["reasons"])
    assert uc.worklist(services.uow(), "riverbend", "denied")["items"][0]["id"] == created["id"]


def test_commercial_denies_without_failed_trials(services, sandbox_direct) -> None:
    put_record(services.uow(), "coverages", coverage_payload())
    from service.usecases import get_record

    for index in (1, 2):
        record = get_record(services.uow(), "medication-trials", f"pt-0001-trial-{index}", "riverbend").record
        put_record(services.uow(), "medication-trials", {**record, "outcome": "response"})
    created = uc.create_prior_auth(services.uow(), "riverbend", "pt-0001", "iv-ketamine-series", start=dt.date(2026, 3, 2))
    assert created["precheck"]["status"] == "incomplete"
    denied = uc.submit_prior_auth(services.uow_factory, PayerClient, created["id"], _endpoints(sandbox_direct))
    assert denied["status"] == "denied"
    assert any("failed antidepressant trial" in r for r in denied["decision"]["items"][0]["reasons"])


def test_unreachable_payer_is_recorded_not_raised(services) -> None:
    put_record(services.uow(), "coverages", coverage_payload())
    created = uc.create_prior_auth(services.uow(), "riverbend", "pt-0001", "iv-ketamine-series", start=dt.date(2026, 3, 2))
    result = uc.submit_prior_auth(services.uow_factory, PayerClient, created["id"], {"acme-commercial": "http://127.0.0.1:9/fhir"})
    assert result["status"] == "error" and "unreachable" in result["last_exchange"]["error"]
    assert uc.worklist(services.uow(), "riverbend", "needs-auth")["items"][0]["id"] == created["id"]


def test_claim_documentation_json_fhir_and_csv(services, assert_fhir_valid) -> None:
    put_record(services.uow(), "coverages", coverage_payload())
    docs, _, _ = uc.claim_documentation(services.uow(), "riverbend", "pt-0001", "pt-0001-session-1")
    lines = [(line.code, line.units) for line in docs[0].lines]
    # 40-min infusion -> 96365 only; J3490 with NDC; 70-min integration psychotherapy -> 90837
    assert lines == [("96365", 1), ("J3490", 1), ("90837", 1)]
    assert docs[0].lines[1].ndc == "67457-108-10" and docs[0].diagnoses[0][1] == "F33.2"
    claim = uc.claim_fhir(services.uow(), "riverbend", "pt-0001", "pt-0001-session-1")
    assert claim["use"] == "claim" and claim["item"][1]["detail"][0]["productOrService"]["coding"][0]["code"] == "67457-108-10"
    assert_fhir_valid(claim)
    client = authorize(TestClient(create_app(services=services)))
    response = client.get("/api/v1/coverage/claims", params={"clinic_id": "riverbend", "patient_id": "pt-0001", "format": "csv"})
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert response.status_code == 200 and rows[0]["code"] == "96365" and rows[0]["diagnosis_pointers"] == "A"
    pdf = client.get("/api/v1/coverage/claims", params={"clinic_id": "riverbend", "patient_id": "pt-0001", "format": "pdf"})
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    from pypdf import PdfReader

    text = "".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    for expected in ("Superbill", "Jordan Rivera", "96365", "J3490", "67457-108-10", "F33.2", "90837"):
        assert expected in text, expected


def test_claim_documentation_says_why_a_code_is_not_supported(services) -> None:
    from service.usecases import get_record

    record = get_record(services.uow(), "administration-sessions", "pt-0001-session-2", "riverbend").record
    put_record(services.uow(), "administration-sessions", {**record, "status": "stopped", "status_reason": "BP rise",
                                                            "ended_at": None, "discharged_at": None})
    integration = get_record(services.uow(), "integration-sessions", "pt-0001-session-2-integration", "riverbend").record
    put_record(services.uow(), "integration-sessions", {**integration, "minutes": None})
    docs, _, _ = uc.claim_documentation(services.uow(), "riverbend", "pt-0001", "pt-0001-session-2")
    reasons = {u.what: u.reason for u in docs[0].unsupported}
    assert "stop times are not documented" in reasons["IV administration (96365/96366)"]
    assert "minutes are not documented" in reasons["integration psychotherapy"]
    assert [line.code for line in docs[0].lines] == ["J3490"]


@pytest.fixture
def esketamine_patient(services):
    from service.courses import DEMO_PATIENT, course_payloads
    from dataclasses import replace

    spec = replace(DEMO_PATIENT, patient_key="pt-esk", agent="esketamine", route="intranasal", sessions=2)
    for kind, payload in course_payloads(spec):
        if kind not in ("clinics", "practitioners", "locations"):
            put_record(services.uow(), kind, payload)
    return "pt-esk"


@pytest.mark.parametrize(("payer", "codes"), [
    ("medicare-demo", [("G2082", 1, ("KX",)), ("G2083", 1, ("KX",))]),  # 56 mg then 84 mg, drug bundled
    ("acme-commercial", [("J0013", 56, ()), ("J0013", 84, ())]),        # 2026 dates: J0013 x mg
])
def test_esketamine_session_lines_by_payer(services, esketamine_patient, payer, codes) -> None:
    put_record(services.uow(), "coverages", {**coverage_payload(payer, key="cov-esk"), "patient_id": esketamine_patient,
                                             "rems_patient_enrolled": True})
    docs, _, _ = uc.claim_documentation(services.uow(), "riverbend", esketamine_patient)
    drug_lines = [(line.code, line.units, line.modifiers) for doc in docs for line in doc.lines if line.code[0] in "GJS"]
    assert drug_lines == codes


def test_rems_monitoring_status_and_deadline(services, esketamine_patient) -> None:
    put_record(services.uow(), "coverages", {**coverage_payload("medicare-demo", key="cov-esk"),
                                             "patient_id": esketamine_patient, "rems_patient_enrolled": True})
    status = uc.rems_monitoring(services.uow(), "riverbend", esketamine_patient, today=dt.date(2026, 3, 6))
    first = status["sessions"][0]
    assert first["due_on"] == "2026-03-09" and first["status"] == "ready" and first["missing"] == []
    assert first["fields"]["bp_post_dose_40min"]["systolic"] > 0 and first["fields"]["observation_minutes"] >= 120
    late = uc.rems_monitoring(services.uow(), "riverbend", esketamine_patient, today=dt.date(2026, 3, 20))
    assert late["sessions"][0]["status"] == "overdue"
    done = uc.mark_rems_submitted(services.uow(), "riverbend", esketamine_patient, first["session_id"], dt.date(2026, 3, 4))
    assert done["sessions"][0]["status"] == "submitted"


def test_coverage_resources_validate(services, assert_fhir_valid) -> None:
    result = put_record(services.uow(), "coverages", coverage_payload())
    types = [r.resource_type for r in result.fhir]
    assert types[:2] == ["Organization", "Coverage"]
    with services.uow() as uow:
        import orjson

        for ref in result.fhir:
            stored = uow.resources.read(ref.resource_type, ref.id)
            assert_fhir_valid(orjson.loads(stored.json))


def test_api_routes(services, sandbox_direct, monkeypatch) -> None:
    monkeypatch.setenv("PAYER_ACME_COMMERCIAL_URL", sandbox_direct)
    put_record(services.uow(), "coverages", coverage_payload())
    client = authorize(TestClient(create_app(services=services)))
    check = client.get("/api/v1/coverage/precheck", params={"clinic_id": "riverbend", "patient_id": "pt-0001",
                                                            "service": "iv-ketamine-series", "coverage_id": "cov-1"})
    assert check.status_code == 200 and check.json()["status"] == "ready"
    created = client.post("/api/v1/coverage/prior-auth", json={"clinic_id": "riverbend", "patient_id": "pt-0001",
                                                               "service": "iv-ketamine-series", "start": "2026-03-02"})
    assert created.status_code == 201
    rid = created.json()["id"]
    bundle = client.get(f"/api/v1/coverage/prior-auth/{rid}/bundle")
    assert bundle.headers["content-type"].startswith("application/fhir+json")
    assert bundle.json()["meta"]["profile"] == [PAS + "profile-pas-request-bundle"]
    submitted = client.post(f"/api/v1/coverage/prior-auth/{rid}/submit")
    assert submitted.status_code == 200 and submitted.json()["status"] == "approved"
    assert client.get("/api/v1/coverage/prior-auth", params={"clinic_id": "riverbend", "state": "approved"}).json()["counts"] == {"approved": 1}
    assert client.get("/api/v1/coverage/prior-auth/nope").status_code == 404
    assert client.get("/api/v1/coverage/precheck", params={"clinic_id": "riverbend", "patient_id": "pt-0001",
                                                           "service": "bogus"}).status_code == 422
