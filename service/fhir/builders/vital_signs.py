"""VitalsReading -> US Core vital-sign Observations, one per measurement present.

Profiles, LOINC codes and fixed UCUM units per clinical-coding.md §2 (US Core [S3]): blood
pressure is ONE 85354-9 Observation with systolic (8480-6) and diastolic (8462-4) components
in mm[Hg]; SpO2 carries both 59408-5 and 2708-6; heart and respiratory rate in /min.
"""

from __future__ import annotations

from decimal import Decimal

from ...domain.monitoring import VitalsReading
from ...terminology import coding, codings, concept
from ..codes import category
from ..context import MappingContext
from ..elements import codeable, instant, prune, quantity
from ..mapper import builds

MEASUREMENT_KEY = {
    "blood_pressure": "bp_panel",
    "heart_rate": "heart_rate",
    "spo2": "spo2",
    "respiratory_rate": "respiratory_rate",
    "body_temperature": "body_temperature",
}
UNIT_DISPLAY = {"mm[Hg]": "mmHg", "/min": "/min", "%": "%", "Cel": "C", "kg": "kg"}


def vital_sign(
    ctx: MappingContext,
    *,
    kind: str,
    key: str,
    part: str,
    concept_key: str,
    patient_id: str,
    when,
    value: Decimal | int | None = None,
    components: list[dict] | None = None,
    encounter: dict | None = None,
    performer: dict | None = None,
) -> dict:
    """One US Core vital-sign Observation for `concept_key` of the vital-signs table."""
    spec = concept("vital-signs", concept_key)
    unit = spec.extra.get("ucum")
    body = {
        "resourceType": "Observation",
        "id": ctx.id("Observation", kind, key, part),
        "meta": {"profile": [spec.extra["profile"]]},
        "status": "final",
        "category": [category("observation_category_vital_signs")],
        "code": codeable(codings("vital-signs", concept_key)),
        "subject": ctx.patient_ref(patient_id),
        "encounter": encounter,
        "effectiveDateTime": instant(when),
        "performer": [performer] if performer else [],
    }
    if components is not None:
        body["component"] = components
    else:
        body["valueQuantity"] = quantity(value, unit, UNIT_DISPLAY.get(unit, unit))
    return prune(body)


def _bp_components(systolic: int, diastolic: int) -> list[dict]:
    return [
        {"code": codeable(coding("vital-signs", "systolic")), "valueQuantity": quantity(systolic, "mm[Hg]", "mmHg")},
        {"code": codeable(coding("vital-signs", "diastolic")), "valueQuantity": quantity(diastolic, "mm[Hg]", "mmHg")},
    ]


def blood_pressure(ctx: MappingContext, *, kind: str, key: str, patient_id: str, when, systolic: int, diastolic: int, **kw) -> dict:
    return vital_sign(
        ctx, kind=kind, key=key, part="blood_pressure", concept_key="bp_panel", patient_id=patient_id, when=when,
        components=_bp_components(systolic, diastolic), **kw,
    )


@builds(VitalsReading)
def vitals(reading: VitalsReading, ctx: MappingContext) -> list[dict]:
    common = {
        "kind": "vitals",
        "key": reading.id,
        "patient_id": reading.patient_id,
        "when": reading.taken_at,
        "encounter": ctx.ref("Encounter", "administration-sessions", reading.session_id) if reading.session_id else None,
        "performer": ctx.practitioner_ref(reading.performer_id) if reading.performer_id else None,
    }
    values = {
        "heart_rate": reading.heart_rate_bpm,
        "spo2": reading.spo2_percent,
        "respiratory_rate": reading.respiratory_rate,
        "body_temperature": reading.temperature_c,
    }
    out = []
    for name in reading.measurements():
        if name == "blood_pressure":
            out.append(blood_pressure(ctx, systolic=reading.systolic_mmhg, diastolic=reading.diastolic_mmhg, **common))
        else:
            out.append(vital_sign(ctx, part=name, concept_key=MEASUREMENT_KEY[name], value=values[name], **common))
    return out
