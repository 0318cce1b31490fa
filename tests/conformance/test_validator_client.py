"""Unit tests of the Python side (no JVM): OperationOutcome parsing, report grouping, skip rules."""

from __future__ import annotations

import json

import pytest

from service.conformance.hl7_validator import HL7Validator, ValidationResult, ValidatorNotBuiltError
from tests.plugins.fhir_validator import ValidationReport, message_kind, validator_required

OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [
        {
            "severity": "error",
            "code": "code-invalid",
            "diagnostics": "Unknown code 'x'",
            "expression": ["Observation.status"],
            "location": ["Observation.status"],
            "details": {"coding": [{"system": "http://hl7.org/fhir/java-core-messageId", "code": "Terminology_X"}]},
            "extension": [
                {"url": "http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-line", "valueInteger": 3},
                {"url": "http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-col", "valueInteger": 7},
            ],
        },
        {"severity": "fatal", "code": "exception", "diagnostics": "boom"},
        {"severity": "warning", "code": "invariant", "diagnostics": "dom-6", "expression": ["Observation"]},
        {"severity": "information", "code": "informational", "diagnostics": "not checked offline: LOINC"},
    ],
}


def test_result_from_outcome():
    result = ValidationResult.from_outcome(OUTCOME)
    assert [i.severity for i in result.errors] == ["error", "fatal"]
    assert [i.message for i in result.warnings] == ["dom-6"]
    assert len(result.information) == 1
    assert not result.ok
    first = result.issues[0]
    assert (first.location, first.expression, first.line, first.col) == ("Observation.status",) * 2 + (3, 7)
    assert first.message_id == "Terminology_X"
    assert "ERROR\tObservation.status\tUnknown code 'x'" in result.format()
    assert "INFORMATION" not in result.format("warning")


def test_empty_outcome_is_ok():
    result = ValidationResult.from_outcome(
        {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "information", "code": "informational", "diagnostics": "No issues detected"}],
        }
    )
    assert result.ok and result.issues == []


def test_missing_jar_is_a_clear_error(tmp_path):
    with pytest.raises(ValidatorNotBuiltError, match="build-validator"):
        HL7Validator(jar=tmp_path / "nope.jar")


def test_require_validator_env():
    assert validator_required({"REQUIRE_VALIDATOR": "1"})
    assert not validator_required({"REQUIRE_VALIDATOR": "0"})
    assert not validator_required({})


def test_report_groups_by_kind(tmp_path):
    report = ValidationReport()
    result = ValidationResult.from_outcome(OUTCOME)
    report.record({"resourceType": "Observation"}, result)
    report.record({"resourceType": "Observation"}, result)
    path = report.write(tmp_path / "r.json")
    data = json.loads(path.read_text())
    assert data["resources_validated"] == 2
    assert data["totals"] == {"information": 2, "warning": 2}
    assert message_kind("Code 'abc' in http://loinc.org 12") == "Code '…' in <url> <n>"
