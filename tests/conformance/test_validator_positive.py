"""Positive cases: correct resources pass the HL7 validator with zero errors; offline terminology rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.fhir_validator import describe

pytestmark = pytest.mark.validator

DATA = Path(__file__).resolve().parent / "data"
US_CORE_BP = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-blood-pressure"
NOT_CHECKED = "not checked offline: "


def load(relative: str) -> dict[str, Any]:
    """A fresh copy of a JSON fixture under tests/conformance/data."""
    return json.loads((DATA / relative).read_text(encoding="utf-8"))


def test_us_core_blood_pressure_is_valid(assert_fhir_valid):
    obs = load("valid/observation-bp.json")
    assert obs["meta"]["profile"] == [US_CORE_BP]
    result = assert_fhir_valid(obs)
    assert result.errors == []


def test_us_core_blood_pressure_valid_against_explicit_profile(assert_fhir_valid):
    obs = load("valid/observation-bp.json")
    del obs["meta"]
    assert_fhir_valid(obs, profile=US_CORE_BP)


def test_phq9_questionnaire_response_is_valid(assert_fhir_valid):
    qr = load("valid/qr-phq9.json")
    result = assert_fhir_valid(qr)
    assert result.errors == []
    # the QR really was checked against its Questionnaire: LOINC answer codes were seen (not checked offline)
    assert any(i.message.startswith(NOT_CHECKED) for i in result.information), describe(result)


def test_phq9_questionnaire_itself_is_valid(assert_fhir_valid):
    assert_fhir_valid(load("questionnaires/phq-9.json"))


def test_us_core_311_versioned_profile_resolves(fhir_validator):
    patient = {
        "resourceType": "Patient",
        "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient|3.1.1"]},
        "identifier": [{"system": "urn:oid:2.16.840.1.113883.4.1", "value": "000-00-0000"}],
        "name": [{"family": "Doe", "given": ["Jane"]}],
        "gender": "female",
    }
    result = fhir_validator.validate(patient)
    assert result.ok, describe(result)
    assert not [i for i in result.warnings if "could not be found" in i.message], describe(result)
    del patient["gender"]  # required (1..1) in US Core 3.1.1 Patient
    result = fhir_validator.validate(patient)
    assert [e for e in result.errors if "gender" in e.message and "3.1.1" in e.message], describe(result)


def test_unknown_loinc_code_is_at_most_information(fhir_validator):
    obs = load("valid/observation-bp.json")
    del obs["meta"]  # plain Observation: nothing but terminology can object to the code
    obs["code"]["coding"][0]["code"] = "99999-99"
    obs["code"]["coding"][0]["display"] = "made up"
    result = fhir_validator.validate(obs)
    about = [i for i in result.issues if "99999-99" in i.message]
    assert about, describe(result)
    assert all(i.severity == "information" for i in about), describe(result)
    assert any(i.message.startswith(NOT_CHECKED) for i in about), describe(result)


def test_profile_pattern_on_loinc_code_is_still_an_error(fhir_validator):
    # the downgrade only covers terminology lookups: a profile's fixed LOINC pattern is checkable offline
    obs = load("valid/observation-bp.json")
    obs["code"]["coding"][0]["code"] = "99999-99"
    result = fhir_validator.validate(obs)
    assert [e for e in result.errors if "85354-9" in e.message], describe(result)


def test_bad_code_from_external_system_in_required_binding_is_not_an_error(fhir_validator):
    # US Core 7 DocumentReference.type has a REQUIRED binding to a value set made of a LOINC filter
    doc = {
        "resourceType": "DocumentReference",
        "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-documentreference"]},
        "status": "current",
        "type": {"coding": [{"system": "http://loinc.org", "code": "00000-0"}]},
        "category": [
            {
                "coding": [
                    {
                        "system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
                        "code": "clinical-note",
                    }
                ]
            }
        ],
        "subject": {"reference": "Patient/example"},
        "date": "2024-05-01T10:00:00Z",
        "content": [{"attachment": {"contentType": "text/plain", "data": "aGVsbG8="}}],
    }
    result = fhir_validator.validate(doc)
    assert result.ok, describe(result)
    about = [i for i in result.issues if "00000-0" in i.message]
    assert about and all(i.severity == "information" and i.message.startswith(NOT_CHECKED) for i in about)
    # ...while a non-external bad code in the same resource still is an error
    doc["status"] = "bogus"
    assert [e for e in fhir_validator.validate(doc).errors if "bogus" in e.message]


def test_snomed_and_rxnorm_codes_are_not_checked(fhir_validator):
    condition = {
        "resourceType": "Condition",
        "clinicalStatus": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical", "code": "active"}]
        },
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": "1234567890123"}]},
        "subject": {"reference": "Patient/example"},
    }
    result = fhir_validator.validate(condition)
    assert result.ok, describe(result)
    med = {
        "resourceType": "Medication",
        "code": {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "0"}]},
    }
    assert fhir_validator.validate(med).ok


def test_ucum_is_still_checked(fhir_validator):
    obs = load("valid/observation-bp.json")
    obs["component"][0]["valueQuantity"]["code"] = "mm[Hgx]"
    result = fhir_validator.validate(obs)
    bad = [i for i in result.issues if "mm[Hgx]" in i.message]
    assert bad and not any(i.message.startswith(NOT_CHECKED) for i in bad), describe(result)
    assert any(i.severity in ("error", "warning") for i in bad), describe(result)


def test_validation_is_fast_when_warm(fhir_validator):
    import time

    obs = load("valid/observation-bp.json")
    fhir_validator.validate(obs)
    start = time.monotonic()
    for _ in range(5):
        fhir_validator.validate(obs)
    assert (time.monotonic() - start) / 5 < 2.0


def test_health_and_dependencies(fhir_validator):
    assert fhir_validator.health()
    deps = fhir_validator.unresolved_dependencies()
    assert all(i.severity == "warning" for i in deps)
    assert any("hl7.fhir.us.davinci-crd" in i.message for i in deps)
