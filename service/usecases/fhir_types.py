"""Which resource types the FHIR REST API serves and which it accepts writes for."""

from __future__ import annotations

import re

READ_TYPES: tuple[str, ...] = (
    "AdverseEvent", "CarePlan", "Condition", "Coverage", "Encounter", "EpisodeOfCare", "Flag", "Location",
    "Medication", "MedicationAdministration", "MedicationRequest", "Observation", "Organization", "Patient",
    "Practitioner", "Procedure", "Provenance", "QuestionnaireResponse",
)
"""Every type the store holds (domain mappings) plus Coverage, which EHRs send in."""

WRITE_TYPES: tuple[str, ...] = ("Coverage", "Observation", "Patient", "QuestionnaireResponse")
"""Types EHRs may create, update and delete through the FHIR API (source kind `fhir`)."""

FHIR_SOURCE_KIND = "fhir"
"""`fhir_resource.source_kind` of resources written through the FHIR API (no domain record)."""

ID_PATTERN = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


def valid_id(value: str) -> bool:
    return bool(ID_PATTERN.match(value))
