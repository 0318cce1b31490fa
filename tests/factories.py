"""Small valid payloads for every record kind, all belonging to one clinic and one patient
course. Each function returns a fresh dict; pass keyword overrides to change fields.

    clinic(), practitioner(), location(), patient(), enrollment(), administration_session(), ...
    course() -> [(kind, payload), ...] in dependency order (clinic first).
"""

from __future__ import annotations

import copy
from typing import Any

CLINIC = "clinic-1"
PATIENT = "pat-1"
NPI_OK = "1234567893"  # passes the Luhn check over 80840 + first 9 digits


def _with(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    data = copy.deepcopy(base)
    for key, value in overrides.items():
        if value is ... and key in data:
            del data[key]
        else:
            data[key] = value
    return data


def clinic(**overrides: Any) -> dict[str, Any]:
    return _with(
        {
            "id": CLINIC,
            "clinic_id": CLINIC,
            "name": "Lakeside Ketamine Clinic",
            "npi": NPI_OK,
            "identifier_system": "https://lakeside.example.org/ids",
            "phone": "+1 555 010 2000",
            "rems_certified": True,
        },
        overrides,
    )


def practitioner(**overrides: Any) -> dict[str, Any]:
    return _with(
        {
            "id": "dr-1",
            "clinic_id": CLINIC,
            "npi": NPI_OK,
            "family_name": "Rivera",
            "given_names": ["Ana"],
            "credentials": ["MD"],
            "role": "prescriber",
        },
        overrides,
    )


def location(**overrides: Any) -> dict[str, Any]:
    return _with({"id": "room-1", "clinic_id": CLINIC, "name": "Infusion room 1", "place_of_service": "11"}, overrides)


def patient(**overrides: Any) -> dict[str, Any]:
    return _with(
        {
            "id": PATIENT,
            "clinic_id": CLINIC,
            "mrn": "MRN-0001",
            "family_name": "Doe",
            "given_names": ["Jamie", "Lee"],
            "birth_date": "1985-04-12",
            "sex": "female",
        },
        overrides,
    )


def enrollment(**overrides: Any) -> dict[str, Any]:
    return _with(
        {
            "id": "enr-1",
            "clinic_id": CLINIC,
            "patient_id": PATIENT,
            "course_type": "iv-series",
            "status": "active",
            "start_date": "2026-03-02",
            "care_manager_id": "dr-1",
            "planned_sessions": 6,
        },
        overrides,
    )


def diagnosis(**overrides: Any) -> dict[str, Any]:
    return _with(
        {
            "id": "dx-1",
            "clinic_id": CLINIC,
            "patient_id": PATIENT,
            "icd10": "F33.2",
            "recorded_on": "2026-02-20",
            "recorder_id": "dr-1",
        },
        overrides,
    )


def medication_trial(**overrides: Any) -> dict[str, Any]:
    return _with(
        {
            "id": "trial-1",
            "clinic_id": CLINIC,
            "patient_id": PATIENT,
            "drug": "sertraline",
            "daily_dose_mg": 150,
            "start_date": "2025-01-06",
            "end_date": "2025-03-31",
            "adequate_dose": True,
            "outcome": "no-response",
            "recorded_on": "2026-02-20",
        },
        overrides,
    )


def contraindication_screen(**overrides: Any) -> dict[str, Any]:
    return _with(
        {
            "id": "screen-1",
            "clinic_id": CLINIC,
            "patient_id": PATIENT,
            "screened_on": "2026-02-20",
            "practitioner_id": "dr-1",
            "findings": [
                {"item": "uncontrolled_hypertension", "present": False},
                {"item": "pregnancy", "present": False},
                {"item": "bipolar_disorder", "present": False},
            ],
            "systolic_mmhg": 128,
            "diastolic_mmhg": 82,
        },
        overrides,
    )


def medical_clearance(**overrides: Any) -> dict[str, Any]:
    return _with(
        {
            "id": "clear-1",
            "clinic_id": CLINIC,
            "patient_id": PATIENT,
            "assessed_on": "2026-02-24",
            "practitioner_id": "dr-1",
            "cleared": True,
            "valid_until": "2026-08-24",
        },
        overrides,
    )


def administration_session(**overrides: Any) -> dict[str, Any]:
    return _with(
        {
            "id": "sess-1",
            "clinic_id": CLINIC,
            "patient_id": PATIENT,
            "enrollment_id": "enr-1",
            "location_id": "room-1",
            "practitioner_id": "dr-1",
            "agent": "ketamine",
            "route": "intravenous",
            "product": "ketamine_hcl_injection_100mg_ml",
            "weight_kg": 70,
            "prescribed_mg_per_kg": 0.5,
            "dose_mg": 35,
            "started_at": "2026-03-02T09:00:00-05:00",
            "ended_at": "2026-03-02T09:40:00-05:00",
            "discharged_at": "2026-03-02T11:45:00-05:00",
            "discharge_ready": True,
        },
        overrides,
    )


def vitals(**overrides: Any) -> dict[str, Any]:
    return _with(
        {
            "id": "vit-1",
            "clinic_id": CLINIC,
            "patient_id": PATIENT,
            "session_id": "sess-1",
            "taken_at": "2026-03-02T08:50:00-05:00",
            "phase": "pre-dose",
            "systolic_mmhg": 124,
            "diastolic_mmhg": 80,
            "heart_rate_bpm": 72,
            "performer_id": "dr-1",
        },
        overrides,
    )


def adverse_event(**overrides: Any) -> dict[str, Any]:
    return _with(
        {
            "id": "ae-1",
            "clinic_id": CLINIC,
            "patient_id": PATIENT,
            "session_id": "sess-1",
            "occurred_at": "2026-03-02T09:20:00-05:00",
            "event": "nausea",
            "severity": "mild",
            "actions": ["medication-given"],
            "outcome": "resolved",
            "recorder_id": "dr-1",
        },
        overrides,
    )


def integration_session(**overrides: Any) -> dict[str, Any]:
    return _with(
        {
            "id": "int-1",
            "clinic_id": CLINIC,
            "patient_id": PATIENT,
            "follows_session_id": "sess-1",
            "enrollment_id": "enr-1",
            "modality": "ifs",
            "started_at": "2026-03-03T10:00:00-05:00",
            "minutes": 53,
            "practitioner_id": "dr-1",
        },
        overrides,
    )


def phq9(**overrides: Any) -> dict[str, Any]:
    return _with(
        {
            "id": "phq-1",
            "clinic_id": CLINIC,
            "patient_id": PATIENT,
            "instrument": "phq9",
            "authored_at": "2026-03-02T08:30:00-05:00",
            "timepoint": "baseline",
            "answers": {"1": 3, "2": 3, "3": 2, "4": 2, "5": 2, "6": 2, "7": 2, "8": 1, "9": 0},
            "enrollment_id": "enr-1",
        },
        overrides,
    )


def maintenance_decision(**overrides: Any) -> dict[str, Any]:
    return _with(
        {
            "id": "maint-1",
            "clinic_id": CLINIC,
            "patient_id": PATIENT,
            "enrollment_id": "enr-1",
            "decided_on": "2026-04-01",
            "decision": "continue-monthly",
            "practitioner_id": "dr-1",
            "rationale": "Response after induction; monthly maintenance agreed",
        },
        overrides,
    )


def coverage(**overrides: Any) -> dict[str, Any]:
    return _with(
        {
            "id": "cov-1",
            "clinic_id": CLINIC,
            "patient_id": PATIENT,
            "payer": "acme-commercial",
            "payer_type": "commercial",
            "member_id": "MBR123456",
            "group_id": "GRP-77",
            "plan_id": "GOLD",
            "period_start": "2026-01-01",
        },
        overrides,
    )


FACTORIES = {
    "clinics": clinic,
    "practitioners": practitioner,
    "locations": location,
    "patients": patient,
    "enrollments": enrollment,
    "diagnoses": diagnosis,
    "medication-trials": medication_trial,
    "contraindication-screens": contraindication_screen,
    "medical-clearances": medical_clearance,
    "administration-sessions": administration_session,
    "vitals": vitals,
    "adverse-events": adverse_event,
    "integration-sessions": integration_session,
    "questionnaire-responses": phq9,
    "maintenance-decisions": maintenance_decision,
    "coverages": coverage,
}
"""kind -> factory, in dependency order (every kind's references come before it)."""


def course() -> list[tuple[str, dict[str, Any]]]:
    """One payload of every kind, in dependency order."""
    return [(kind, factory()) for kind, factory in FACTORIES.items()]
