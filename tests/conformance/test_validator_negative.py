"""Negative cases: the HL7 validator must report these FHIR resources as errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.plugins.fhir_validator import describe, errors_matching

pytestmark = pytest.mark.validator

DATA = Path(__file__).resolve().parent / "data"
US_CORE_BP = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-blood-pressure"
US_CORE_HR = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-heart-rate"


def load(relative: str) -> dict[str, Any]:
    """A fresh copy of a JSON fixture under tests/conformance/data."""
    return json.loads((DATA / relative).read_text(encoding="utf-8"))


def test_observation_without_status_is_an_error(fhir_validator):
    result = fhir_validator.validate(load("invalid/observation-missing-status.json"))
    assert errors_matching(result, "Observation.status", "minimum required = 1"), describe(result)


def test_observation_without_code_is_an_error(fhir_validator):
    obs = load("valid/observation-bp.json")
    del obs["code"]
    del obs["meta"]
    result = fhir_validator.validate(obs)
    assert errors_matching(result, "Observation.code", "minimum required = 1"), describe(result)


def test_bogus_status_in_required_binding_is_an_error(fhir_validator):
    result = fhir_validator.validate(load("invalid/observation-bogus-status.json"))
    assert errors_matching(result, "Observation.status", "bogus"), describe(result)
    # the error is not downgraded by the offline-terminology rule (the binding is checkable)
    assert not any(i.message.startswith("not checked offline") and "bogus" in i.message for i in result.issues)


def test_vital_sign_without_value_violates_invariant(fhir_validator):
    obs = load("invalid/observation-hr-no-value.json")
    assert obs["meta"]["profile"] == [US_CORE_HR]
    result = fhir_validator.validate(obs)
    assert errors_matching(result, "vs-2"), describe(result)


def test_blood_pressure_without_systolic_component_is_an_error(fhir_validator):
    obs = load("invalid/observation-bp-missing-systolic.json")
    assert obs["meta"]["profile"] == [US_CORE_BP]
    result = fhir_validator.validate(obs)
    assert errors_matching(result, "systolic"), describe(result)


def test_blood_pressure_profile_given_as_parameter_is_applied(fhir_validator):
    obs = load("invalid/observation-bp-missing-systolic.json")
    del obs["meta"]
    assert fhir_validator.validate(obs).ok
    result = fhir_validator.validate(obs, profile=US_CORE_BP)
    assert errors_matching(result, "systolic"), describe(result)


def test_unknown_requested_profile_is_an_error(fhir_validator):
    result = fhir_validator.validate(
        load("valid/observation-bp.json"), profile="http://example.org/StructureDefinition/nope"
    )
    assert errors_matching(result, "requested profile not found"), describe(result)


def test_questionnaire_response_answer_type_mismatch_is_an_error(fhir_validator):
    qr = load("invalid/qr-phq9-wrong-answer-type.json")
    result = fhir_validator.validate(qr)
    assert [e for e in result.errors if e.location.startswith("QuestionnaireResponse.item[0]")], describe(result)


def test_questionnaire_response_answer_outside_options_is_an_error(fhir_validator):
    qr = load("valid/qr-phq9.json")
    qr["item"][0]["answer"][0]["valueCoding"] = {"system": "http://loinc.org", "code": "LA0000-0"}
    result = fhir_validator.validate(qr)
    assert [e for e in result.errors if e.location.startswith("QuestionnaireResponse.item[0]")], describe(result)


def test_questionnaire_response_integer_item_with_string_is_an_error(fhir_validator):
    qr = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": "http://example.org/ketamine/Questionnaire/mood-check",
        "status": "completed",
        "item": [{"linkId": "mood", "answer": [{"valueString": "seven"}]}],
    }
    result = fhir_validator.validate(qr)
    assert [e for e in result.errors if "item[0]" in e.location], describe(result)


def test_bundle_entries_are_validated(fhir_validator):
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "fullUrl": "urn:uuid:5f1c8a52-3b61-4c2a-9c59-0d5b0c2a0001",
                "resource": load("valid/observation-bp.json"),
            },
            {
                "fullUrl": "urn:uuid:5f1c8a52-3b61-4c2a-9c59-0d5b0c2a0002",
                "resource": load("invalid/observation-bogus-status.json"),
            },
        ],
    }
    result = fhir_validator.validate(bundle)
    assert [e for e in result.errors if "entry[1]" in e.location and "bogus" in e.message], describe(result)
    assert not [e for e in result.errors if "entry[0]" in e.location], describe(result)


def test_bundle_rules_are_checked(fhir_validator):
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [{"fullUrl": "urn:uuid:5f1c8a52-3b61-4c2a-9c59-0d5b0c2a0003", "resource": load("valid/observation-bp.json")}],
    }
    # a transaction entry needs entry.request (bdl-3)
    result = fhir_validator.validate(bundle)
    assert result.errors, describe(result)


def test_garbage_is_fatal_or_error(fhir_validator):
    result = fhir_validator.validate(b"{not json")
    assert result.errors, describe(result)
