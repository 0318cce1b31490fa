"""Every golden case maps to its expected FHIR output and passes the invariants.

Set UPDATE_GOLDEN=1 to rewrite the expected files after a reviewed mapping change.
"""

from __future__ import annotations

import os

import orjson
import pytest

from .golden import case_names, expected_path, run_case, write_expected
from .invariants import check_invariants

NAMES = case_names()


def test_cases_exist_for_every_record_kind():
    from service.domain.records import RECORD_KINDS

    from .golden import load_input

    covered = {r["kind"] for name in NAMES for r in load_input(name)["records"]}
    assert covered == set(RECORD_KINDS), f"kinds without a golden case: {set(RECORD_KINDS) - covered}"


def test_cases_cover_every_resource_type():
    produced = {res["resourceType"] for name in NAMES for res in run_case(name)[0]}
    wanted = {
        "Patient", "Practitioner", "Organization", "Location", "EpisodeOfCare", "Encounter", "Condition",
        "MedicationRequest", "Medication", "MedicationAdministration", "Procedure", "Observation",
        "QuestionnaireResponse", "AdverseEvent", "Provenance", "Flag", "CarePlan",
    }
    assert wanted <= produced, f"not produced by any case: {wanted - produced}"


@pytest.mark.parametrize("name", NAMES)
def test_golden_case(name):
    output, context = run_case(name)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        write_expected(name, output)
    if not expected_path(name).exists():
        write_expected(name, output)
        pytest.fail(f"{expected_path(name).name} was missing and has been written: review it and commit it")
    expected = orjson.loads(expected_path(name).read_bytes())
    assert output == expected


@pytest.mark.parametrize("name", NAMES)
def test_golden_case_invariants(name):
    output, context = run_case(name)
    assert check_invariants(output, resolvable=context) == []
