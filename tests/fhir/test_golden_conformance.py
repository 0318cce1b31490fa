"""Every golden mapping output passes the official HL7 validator (HAPI FHIR's engine) with
zero errors, against the US Core profiles each resource claims in meta.profile."""

from __future__ import annotations

import pytest

from .golden import case_names, run_case


def as_bundle(resources: list[dict]) -> dict:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"fullUrl": f"http://ketamine-interop.example.org/fhir/{r['resourceType']}/{r['id']}", "resource": r}
            for r in resources
        ],
    }


@pytest.mark.parametrize("name", case_names())
def test_golden_output_is_valid(name, assert_fhir_valid):
    output, context = run_case(name)
    # context resources travel in the same Bundle so the validator can resolve references
    assert_fhir_valid(as_bundle(output + [r for r in context if r not in output]))
