"""Screening and eligibility records -> FHIR.

- Diagnosis -> Condition (US Core Condition Problems and Health Concerns), coded ICD-10-CM
  (with the dot, clinical-coding.md §5.1) plus the SNOMED CT coding where the table has one.
- ContraindicationScreen -> one Observation (US Core Observation Screening Assessment,
  category survey) with one component per screen question answered LOINC Yes/No
  (LA33-6 / LA32-8), the conditions coded from contraindications.json where verified;
  plus a US Core blood-pressure Observation when the screen recorded one.
- MedicalClearance -> Observation (local code medical-clearance, valueBoolean).
"""

from __future__ import annotations

from ...domain.screening import ContraindicationScreen, Diagnosis, MedicalClearance, ScreenItem
from ...terminology import UnverifiedCode, codings, concept
from ..codes import category, concept_cc
from ..context import MappingContext
from ..elements import codeable, prune
from ..local_codes import local_coding
from ..mapper import builds
from ..terminology_lookup import has_code, key_for_code
from .vital_signs import blood_pressure

ICD10CM = "http://hl7.org/fhir/sid/icd-10-cm"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"
CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
SCREEN_TABLE_KEY = {
    ScreenItem.ACTIVE_PSYCHOSIS: "psychosis",
    ScreenItem.KETAMINE_HYPERSENSITIVITY: "esketamine_ketamine_hypersensitivity",
}
YES = {"system": "http://loinc.org", "code": "LA33-6", "display": "Yes"}
NO = {"system": "http://loinc.org", "code": "LA32-8", "display": "No"}


def diagnosis_codings(icd10: str) -> tuple[list[dict], str]:
    """ICD-10-CM coding (and SNOMED where known) for a diagnosis code, with its display.

    The code must be in diagnoses.json or contraindications.json: an unknown code is an
    error, never sent unchecked."""
    for table in ("diagnoses", "contraindications"):
        if has_code(table, ICD10CM, icd10):
            key = key_for_code(table, ICD10CM, icd10)
            entry = concept(table, key)
            display = entry.display if entry.code == icd10 else next(
                e["display"] for e in entry.extra_codings if e.get("code") == icd10
            )
            out = [{"system": ICD10CM, "code": icd10, "display": display}]
            sct = [c for c in codings(table, key) if c["system"] == "http://snomed.info/sct"] if table == "contraindications" else []
            return out + sct[:1], display
    return [], key_for_code("diagnoses", ICD10CM, icd10)  # raises UnknownCode naming the code


@builds(Diagnosis)
def condition(diagnosis: Diagnosis, ctx: MappingContext) -> list[dict]:
    codings_, display = diagnosis_codings(diagnosis.icd10)
    kind, key = "diagnoses", diagnosis.id
    return [
        prune(
            {
                "resourceType": "Condition",
                "id": ctx.id("Condition", kind, key),
                "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-condition-problems-health-concerns"]},
                "identifier": [ctx.identifier(kind, key)],
                "clinicalStatus": codeable({"system": CONDITION_CLINICAL, "code": diagnosis.clinical_status.value}),
                "verificationStatus": codeable({"system": CONDITION_VERIFICATION, "code": diagnosis.verification_status.value}),
                "category": [codeable({"system": CONDITION_CATEGORY, "code": "problem-list-item", "display": "Problem List Item"})],
                "code": codeable(codings_, display),
                "subject": ctx.patient_ref(diagnosis.patient_id),
                "onsetDateTime": diagnosis.onset_date.isoformat() if diagnosis.onset_date else None,
                "recordedDate": diagnosis.recorded_on.isoformat(),
                "recorder": ctx.practitioner_ref(diagnosis.recorder_id) if diagnosis.recorder_id else None,
                "note": [{"text": diagnosis.note}] if diagnosis.note else [],
            }
        )
    ]


def _screen_component(item: ScreenItem, present: bool, note: str | None) -> dict:
    table_key = SCREEN_TABLE_KEY.get(item, item.value)
    own = local_coding("program-instruments", "screen-" + item.value.replace("_", "-"))
    try:
        condition_codings = codings("contraindications", table_key)
    except UnverifiedCode:
        condition_codings = []
    text = concept("contraindications", table_key).display
    component = {
        "code": codeable([own, *condition_codings[:2]], f"Screened for {text}"),
        "valueCodeableConcept": codeable(YES if present else NO),
    }
    if note:
        component["interpretation"] = [{"text": note}]
    return component


@builds(ContraindicationScreen)
def contraindication_screen(screen: ContraindicationScreen, ctx: MappingContext) -> list[dict]:
    kind, key = "contraindication-screens", screen.id
    when = screen.screened_on.isoformat()
    out = [
        prune(
            {
                "resourceType": "Observation",
                "id": ctx.id("Observation", kind, key),
                "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-screening-assessment"]},
                "identifier": [ctx.identifier(kind, key)],
                "status": "final",
                "category": [category("observation_category_survey")],
                "code": concept_cc("instruments", "contraindication_screen"),
                "subject": ctx.patient_ref(screen.patient_id),
                "effectiveDateTime": when,
                "performer": [ctx.practitioner_ref(screen.practitioner_id)],
                "component": [_screen_component(f.item, f.present, f.note) for f in screen.findings],
            }
        )
    ]
    if screen.systolic_mmhg is not None:
        out.append(
            blood_pressure(
                ctx, kind=kind, key=key, patient_id=screen.patient_id,
                when=screen.screened_on,
                systolic=screen.systolic_mmhg, diastolic=screen.diastolic_mmhg,
                performer=ctx.practitioner_ref(screen.practitioner_id),
            )
        )
    return out


@builds(MedicalClearance)
def medical_clearance(clearance: MedicalClearance, ctx: MappingContext) -> list[dict]:
    kind, key = "medical-clearances", clearance.id
    return [
        prune(
            {
                "resourceType": "Observation",
                "id": ctx.id("Observation", kind, key),
                "identifier": [ctx.identifier(kind, key)],
                "status": "final",
                "category": [category("observation_category_exam")],
                "code": concept_cc("instruments", "medical_clearance"),
                "subject": ctx.patient_ref(clearance.patient_id),
                "effectivePeriod": {
                    "start": clearance.assessed_on.isoformat(),
                    **({"end": clearance.valid_until.isoformat()} if clearance.valid_until else {}),
                },
                "performer": [ctx.practitioner_ref(clearance.practitioner_id)],
                "valueBoolean": clearance.cleared,
                "note": [{"text": clearance.summary}] if clearance.summary else [],
            }
        )
    ]
