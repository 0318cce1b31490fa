"""Search columns and tokens of a FHIR resource, extracted generically from its JSON.

One date extractor per resource type (the elements FHIR's `date` search parameter uses for
it), the patient a resource belongs to (`subject`/`patient`/`beneficiary` -> Patient), and the
token search parameters (code, identifier, category, ...) as (param, system, value). `status`
is not a token: every resource's status is a column of its row (`fhir_resource.status`), and
`status` searches, `:not` included, are answered from it (docs/decisions/0011, item 16).
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from typing import Any, Callable, Iterable

UTC = dt.timezone.utc
Span = tuple[dt.datetime | None, dt.datetime | None]

_PARTIAL = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2}))?)?$")


def parse_fhir_time(value: str) -> Span:
    """(earliest, latest) instant a FHIR date/dateTime/instant covers; (None, None) if unparseable."""
    match = _PARTIAL.match(value)
    try:
        if match:
            year, month, day = int(match[1]), match[2], match[3]
            if month is None:
                return dt.datetime(year, 1, 1, tzinfo=UTC), dt.datetime(year, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
            m = int(month)
            if day is None:
                last = calendar.monthrange(year, m)[1]
                return dt.datetime(year, m, 1, tzinfo=UTC), dt.datetime(year, m, last, 23, 59, 59, 999999, tzinfo=UTC)
            d = dt.date(year, m, int(day))
            return (
                dt.datetime.combine(d, dt.time.min, UTC),
                dt.datetime.combine(d, dt.time.max, UTC),
            )
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None, None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment, moment


def _span_of(element: Any) -> Span:
    if isinstance(element, str):
        return parse_fhir_time(element)
    if isinstance(element, dict):  # Period
        start = parse_fhir_time(element["start"])[0] if isinstance(element.get("start"), str) else None
        end = parse_fhir_time(element["end"])[1] if isinstance(element.get("end"), str) else None
        return start, end
    return None, None


def _first_of(*names: str) -> Callable[[dict], Span]:
    def extract(resource: dict) -> Span:
        for name in names:
            if name in resource:
                start, end = _span_of(resource[name])
                if start is not None or end is not None:
                    return start, end
        return None, None

    extract.__doc__ = f"date span from the first present of {', '.join(names)}"
    return extract


DATE_EXTRACTORS: dict[str, Callable[[dict], Span]] = {
    "Observation": _first_of("effectiveDateTime", "effectivePeriod", "effectiveInstant", "issued"),
    "Procedure": _first_of("performedDateTime", "performedPeriod"),
    "MedicationAdministration": _first_of("effectiveDateTime", "effectivePeriod"),
    "MedicationRequest": _first_of("authoredOn"),
    "MedicationStatement": _first_of("effectiveDateTime", "effectivePeriod", "dateAsserted"),
    "QuestionnaireResponse": _first_of("authored"),
    "Encounter": _first_of("period"),
    "EpisodeOfCare": _first_of("period"),
    "CarePlan": _first_of("period", "created"),
    "Condition": _first_of("onsetDateTime", "onsetPeriod", "recordedDate"),
    "AdverseEvent": _first_of("date", "detected", "recordedDate"),
    "Patient": _first_of("birthDate"),
    "Consent": _first_of("dateTime"),
    "ServiceRequest": _first_of("occurrenceDateTime", "occurrencePeriod", "authoredOn"),
    "RiskAssessment": _first_of("occurrenceDateTime", "occurrencePeriod"),
    "ClinicalImpression": _first_of("effectiveDateTime", "effectivePeriod", "date"),
    "Flag": _first_of("period"),
    "DetectedIssue": _first_of("identifiedDateTime", "identifiedPeriod"),
    "Coverage": _first_of("period"),
    "Claim": _first_of("created"),
    "DocumentReference": _first_of("date"),
    "Provenance": _first_of("recorded"),
    "Communication": _first_of("sent"),
    "Goal": _first_of("startDate"),
    "AllergyIntolerance": _first_of("recordedDate", "onsetDateTime"),
    "Immunization": _first_of("occurrenceDateTime"),
    "DiagnosticReport": _first_of("effectiveDateTime", "effectivePeriod", "issued"),
}


def date_span(resource: dict) -> Span:
    """(date_start, date_end) of a resource for `date` search; (None, None) if it has none."""
    extractor = DATE_EXTRACTORS.get(resource.get("resourceType", ""))
    return extractor(resource) if extractor else (None, None)


_PATIENT_ELEMENTS = ("subject", "patient", "beneficiary")


def patient_id_of(resource: dict) -> str | None:
    """Id of the Patient a resource belongs to (its own id for a Patient)."""
    if resource.get("resourceType") == "Patient":
        return resource.get("id")
    for name in _PATIENT_ELEMENTS:
        ref = resource.get(name)
        if isinstance(ref, dict):
            reference = ref.get("reference")
            if isinstance(reference, str) and reference.startswith("Patient/"):
                return reference.removeprefix("Patient/")
    return None


TOKEN_ELEMENTS: dict[str, tuple[str, ...]] = {
    "identifier": ("identifier",),
    "code": ("code", "medicationCodeableConcept", "vaccineCode"),
    "category": ("category",),
    "type": ("type",),
    "clinical-status": ("clinicalStatus",),
    "verification-status": ("verificationStatus",),
    "gender": ("gender",),
    "event": ("event",),
    "class": ("class",),
}
MAX_TOKEN = 255


def _tokens_of(element: Any) -> Iterable[tuple[str, str]]:
    if isinstance(element, list):
        for item in element:
            yield from _tokens_of(item)
    elif isinstance(element, str):
        yield "", element
    elif isinstance(element, dict):
        if isinstance(element.get("coding"), list):  # CodeableConcept
            yield from _tokens_of(element["coding"])
        elif isinstance(element.get("code"), str):  # Coding
            yield element.get("system") or "", element["code"]
        elif isinstance(element.get("value"), str):  # Identifier
            yield element.get("system") or "", element["value"]


def search_tokens(resource: dict) -> set[tuple[str, str, str]]:
    """(param, system, value) token search entries of a resource."""
    found: set[tuple[str, str, str]] = set()
    for param, elements in TOKEN_ELEMENTS.items():
        for name in elements:
            if name in resource:
                found.update((param, s, v) for s, v in _tokens_of(resource[name]))
    for component in resource.get("component", []) if isinstance(resource.get("component"), list) else []:
        if isinstance(component, dict):
            found.update(("component-code", s, v) for s, v in _tokens_of(component.get("code")))
    found.update(reference_tokens(resource))
    return {(p, s, v) for p, s, v in found if v and len(v) <= MAX_TOKEN and len(s) <= MAX_TOKEN}


REFERENCE_ELEMENTS: dict[str, tuple[str, ...]] = {
    "encounter": ("encounter",),
    "context": ("context",),
    "medication": ("medicationReference",),
    "target": ("target",),
}
"""Reference search parameters (FHIR REST API): stored as tokens (param, '', 'Type/id') so
`Observation?encounter=Encounter/x` is an index lookup. Only relative literal references."""
_RELATIVE_REFERENCE = re.compile(r"^[A-Z][A-Za-z]+/[A-Za-z0-9\-.]{1,64}$")


def reference_tokens(resource: dict) -> set[tuple[str, str, str]]:
    """(param, '', 'Type/id') entries for the reference elements of REFERENCE_ELEMENTS."""
    found: set[tuple[str, str, str]] = set()
    for param, elements in REFERENCE_ELEMENTS.items():
        for name in elements:
            value = resource.get(name)
            for ref in value if isinstance(value, list) else [value]:
                reference = ref.get("reference") if isinstance(ref, dict) else None
                if isinstance(reference, str) and _RELATIVE_REFERENCE.match(reference):
                    found.add((param, "", reference))
    return found
