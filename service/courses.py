"""Program courses as domain-record payloads: the demo course and generated courses.

`demo_course()` is the realistic course the README's run command loads: screening, six IV
infusions twice weekly with integration psychotherapy after each, vitals and dissociation
scores per session, a PHQ-9 trajectory that reaches response, and a maintenance decision.
`generated_course(n)` makes many varied courses from a seed, for benchmarks and
reliability tests. Payloads are API-shaped dicts (what a clinic system would send), in
dependency order; all people are fictional.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from decimal import Decimal
from typing import Iterator

from .domain.dosing import infusion_plan

Payload = tuple[str, dict]
TZ = dt.timezone(dt.timedelta(hours=-5))  # the demo clinic's local offset (US Eastern, standard time)


def npi_with_check_digit(base9: str) -> str:
    """Complete a 9-digit NPI base with its Luhn check digit (prefix 80840, as CMS specifies)."""
    digits = [int(c) for c in "80840" + base9]
    total = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return base9 + str((10 - total % 10) % 10)


@dataclass(frozen=True)
class ClinicSetup:
    clinic_id: str = "riverbend"
    name: str = "Riverbend Ketamine Clinic"
    identifier_system: str = "https://riverbend-clinic.example.org/ids"
    npi_base: str = "199999999"


def clinic_payloads(setup: ClinicSetup = ClinicSetup()) -> list[Payload]:
    """The clinic, its three clinicians and its treatment room."""
    c = setup.clinic_id
    return [
        (
            "clinics",
            {
                "id": c,
                "clinic_id": c,
                "name": setup.name,
                "npi": npi_with_check_digit(setup.npi_base[:9]),
                "tax_id": "12-3456789",
                "identifier_system": setup.identifier_system,
                "phone": "+1 555 010 0100",
                "address": {"line": ["100 River Road"], "city": "Springfield", "state": "MA", "postal_code": "01101"},
                "rems_certified": True,
            },
        ),
        (
            "practitioners",
            {
                "id": "dr-alvarez",
                "clinic_id": c,
                "npi": npi_with_check_digit("100000001"),
                "family_name": "Alvarez",
                "given_names": ["Maria"],
                "credentials": ["MD"],
                "role": "prescriber",
            },
        ),
        (
            "practitioners",
            {
                "id": "rn-okafor",
                "clinic_id": c,
                "npi": npi_with_check_digit("100000002"),
                "family_name": "Okafor",
                "given_names": ["Chidi"],
                "credentials": ["RN"],
                "role": "nurse",
            },
        ),
        (
            "practitioners",
            {
                "id": "lcsw-berg",
                "clinic_id": c,
                "npi": npi_with_check_digit("100000003"),
                "family_name": "Berg",
                "given_names": ["Hanna"],
                "credentials": ["LCSW"],
                "role": "therapist",
            },
        ),
        ("locations", {"id": "suite-1", "clinic_id": c, "name": "Infusion suite 1", "place_of_service": "11"}),
    ]


def _t(day: dt.date, hour: int, minute: int = 0) -> str:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=TZ).isoformat()


def _phq9_answers(total: int, item9: int = 0) -> dict[str, int]:
    """A plausible PHQ-9 answer set with the given total; item 9 as given, item 10 set."""
    answers = {**_spread(total - item9, 8, 3), "9": item9}
    answers["10"] = 2 if total >= 10 else 1
    return answers


def _spread(total: int, items: int, max_points: int) -> dict[str, int]:
    answers = {}
    remaining = total
    for item in range(1, items + 1):
        share = min(max_points, -(-remaining // (items - item + 1)))
        answers[str(item)] = share
        remaining -= share
    return answers


@dataclass(frozen=True)
class CourseSpec:
    """What varies between generated courses."""

    patient_key: str
    family_name: str
    given_name: str
    birth_date: dt.date
    sex: str
    start: dt.date
    weight_kg: Decimal
    phq9_trajectory: tuple[int, ...]
    sessions: int = 6
    agent: str = "ketamine"
    route: str = "intravenous"
    nausea_on_session: int | None = 2
    modalities: tuple[str, ...] = ("emdr", "ifs", "art")


def course_payloads(spec: CourseSpec, setup: ClinicSetup = ClinicSetup()) -> list[Payload]:
    """One patient's whole course, from registration to the maintenance decision."""
    c, p = setup.clinic_id, spec.patient_key
    out: list[Payload] = []

    def add(kind: str, payload: dict) -> None:
        out.append((kind, {"clinic_id": c, **payload}))

    add(
        "patients",
        {
            "id": p,
            "mrn": f"MRN-{p.upper()}",
            "family_name": spec.family_name,
            "given_names": [spec.given_name],
            "birth_date": spec.birth_date.isoformat(),
            "sex": spec.sex,
            "phone": "+1 555 010 0199",
        },
    )
    screening_day = spec.start - dt.timedelta(days=7)
    enrollment = f"{p}-course-1"
    course_type = "iv-series" if spec.agent == "ketamine" else "esketamine-course"
    add(
        "enrollments",
        {
            "id": enrollment,
            "patient_id": p,
            "course_type": course_type,
            "status": "active",
            "start_date": spec.start.isoformat(),
            "care_manager_id": "dr-alvarez",
            "planned_sessions": spec.sessions,
        },
    )
    add("diagnoses", {"id": f"{p}-dx-1", "patient_id": p, "icd10": "F33.2", "onset_date": "2024-09-01",
                      "recorded_on": screening_day.isoformat(), "recorder_id": "dr-alvarez"})
    trials = [
        ("sertraline", "150", "2024-10-01", "2024-12-20", True, "no-response"),
        ("venlafaxine", "225", "2025-01-10", "2025-03-21", True, "partial-response"),
        ("bupropion", "300", "2025-04-01", "2025-04-20", True, "intolerance"),
    ]
    for index, (drug, dose, start, end, adequate, outcome) in enumerate(trials, start=1):
        add("medication-trials", {"id": f"{p}-trial-{index}", "patient_id": p, "drug": drug, "daily_dose_mg": dose,
                                  "start_date": start, "end_date": end, "adequate_dose": adequate, "outcome": outcome,
                                  "source": "prior-records", "recorded_on": screening_day.isoformat(), "recorder_id": "dr-alvarez"})
    add(
        "contraindication-screens",
        {
            "id": f"{p}-screen-1",
            "patient_id": p,
            "screened_on": screening_day.isoformat(),
            "practitioner_id": "dr-alvarez",
            "findings": [
                {"item": item, "present": False}
                for item in (
                    "uncontrolled_hypertension", "recent_myocardial_infarction", "unstable_angina", "active_psychosis",
                    "aneurysmal_vascular_disease", "intracerebral_hemorrhage", "pregnancy", "bipolar_disorder",
                    "substance_use_disorder",
                )
            ],
            "systolic_mmhg": 126,
            "diastolic_mmhg": 80,
        },
    )
    add("medical-clearances", {"id": f"{p}-clearance-1", "patient_id": p, "assessed_on": screening_day.isoformat(),
                               "practitioner_id": "dr-alvarez", "cleared": True,
                               "valid_until": (screening_day + dt.timedelta(days=180)).isoformat(),
                               "summary": "Cleared for ketamine treatment; ECG and labs unremarkable."})
    add("questionnaire-responses", {"id": f"{p}-cssrs-baseline", "patient_id": p, "instrument": "cssrs_screener",
                                    "authored_at": _t(screening_day, 9), "timepoint": "baseline", "rater_id": "dr-alvarez",
                                    "answers": {"1": True, "2": False, "6": False}})
    add("questionnaire-responses", {"id": f"{p}-gad7-baseline", "patient_id": p, "instrument": "gad7",
                                    "authored_at": _t(screening_day, 9, 10), "timepoint": "baseline",
                                    "answers": _spread(12, 7, 3)})
    add("questionnaire-responses", {"id": f"{p}-madrs-baseline", "patient_id": p, "instrument": "madrs",
                                    "authored_at": _t(screening_day, 9, 30), "timepoint": "baseline", "rater_id": "dr-alvarez",
                                    "answers": _spread(32, 10, 6)})
    trajectory = list(spec.phq9_trajectory)
    add("questionnaire-responses", {"id": f"{p}-phq9-0", "patient_id": p, "instrument": "phq9",
                                    "authored_at": _t(screening_day, 9, 20), "timepoint": "baseline",
                                    "answers": _phq9_answers(trajectory[0], item9=1)})
    add("integration-sessions", {"id": f"{p}-prep-1", "patient_id": p, "enrollment_id": enrollment, "modality": "preparation",
                                 "started_at": _t(spec.start - dt.timedelta(days=2), 14), "minutes": 60,
                                 "practitioner_id": "lcsw-berg", "location_id": "suite-1"})
    session_day = spec.start
    for number in range(1, spec.sessions + 1):
        session = f"{p}-session-{number}"
        weight = spec.weight_kg + Decimal(number % 2) * Decimal("0.4")
        plan = infusion_plan(weight, minutes=40, concentration_mg_per_ml=Decimal(10))
        start = dt.datetime.combine(session_day, dt.time(9, 0), tzinfo=TZ)
        if spec.agent == "ketamine":
            dose = {"agent": "ketamine", "route": spec.route, "product": "ketamine_hcl_injection_100mg_ml",
                    "ndc": "67457-108-10", "weight_kg": str(weight), "prescribed_mg_per_kg": "0.5",
                    "dose_mg": str(plan.dose_mg), "concentration_mg_per_ml": "10",
                    "pump_rate_ml_per_h": str(plan.pump_rate_ml_per_h),
                    "started_at": start.isoformat(), "ended_at": (start + dt.timedelta(minutes=40)).isoformat()}
            premeds = [{"drug": "ondansetron", "dose_mg": "4", "route": "intravenous",
                        "given_at": (start - dt.timedelta(minutes=15)).isoformat()}]
        else:
            mg = 56 if number == 1 else 84
            dose = {"agent": "esketamine", "route": "intranasal", "product": f"spravato_{mg}mg_kit",
                    "dose_mg": str(mg), "devices": mg // 28, "weight_kg": str(weight),
                    "started_at": start.isoformat(), "ended_at": (start + dt.timedelta(minutes=5 * (mg // 28 - 1))).isoformat()}
            premeds = []
        end = dt.datetime.fromisoformat(dose["ended_at"])
        add("administration-sessions", {
            "id": session, "patient_id": p, "enrollment_id": enrollment, "location_id": "suite-1",
            "practitioner_id": "rn-okafor", "prescriber_id": "dr-alvarez", **dose, "lot_number": f"LOT{2600 + number}",
            "premedications": premeds, "discharged_at": (end + dt.timedelta(minutes=120)).isoformat(), "discharge_ready": True,
        })
        for phase, offset, sbp, dbp, hr in (("pre-dose", -10, 124, 78, 72), ("intra-session", 20, 142, 88, 84),
                                             ("post-dose", 40, 136, 84, 80), ("pre-discharge", 115, 126, 80, 74)):
            add("vitals", {"id": f"{session}-vitals-{phase}", "patient_id": p, "session_id": session,
                           "taken_at": (start + dt.timedelta(minutes=offset)).isoformat(), "phase": phase,
                           "systolic_mmhg": sbp + number % 3, "diastolic_mmhg": dbp, "heart_rate_bpm": hr,
                           "spo2_percent": 98, "respiratory_rate": 14, "performer_id": "rn-okafor"})
        add("questionnaire-responses", {"id": f"{session}-cadss", "patient_id": p, "instrument": "cadss",
                                        "authored_at": (end + dt.timedelta(minutes=30)).isoformat(), "timepoint": "post-session",
                                        "session_id": session, "rater_id": "rn-okafor", "answers": _spread(max(4, 20 - 2 * number), 23, 4)})
        if spec.nausea_on_session == number:
            add("adverse-events", {"id": f"{session}-ae-1", "patient_id": p, "session_id": session,
                                   "occurred_at": (start + dt.timedelta(minutes=25)).isoformat(), "event": "nausea",
                                   "severity": "mild", "actions": ["medication-given", "observation-extended"],
                                   "outcome": "resolved", "recorder_id": "rn-okafor"})
        add("integration-sessions", {"id": f"{session}-integration", "patient_id": p, "follows_session_id": session,
                                     "enrollment_id": enrollment, "modality": spec.modalities[(number - 1) % len(spec.modalities)],
                                     "started_at": (session_day + dt.timedelta(days=1)).isoformat() + "T10:00:00-05:00",
                                     "minutes": 60 + 10 * (number % 3), "practitioner_id": "lcsw-berg", "location_id": "suite-1"})
        if number % 2 == 0 and number // 2 < len(trajectory):
            add("questionnaire-responses", {"id": f"{p}-phq9-{number // 2}", "patient_id": p, "instrument": "phq9",
                                            "authored_at": _t(session_day, 8, 45), "timepoint": "pre-session",
                                            "enrollment_id": enrollment, "answers": _phq9_answers(trajectory[number // 2])})
        session_day += dt.timedelta(days=3 if number % 2 else 4)
    follow_up = session_day + dt.timedelta(days=14)
    add("questionnaire-responses", {"id": f"{p}-phq9-follow-up", "patient_id": p, "instrument": "phq9",
                                    "authored_at": _t(follow_up, 9), "timepoint": "follow-up", "enrollment_id": enrollment,
                                    "answers": _phq9_answers(trajectory[-1])})
    add("questionnaire-responses", {"id": f"{p}-madrs-follow-up", "patient_id": p, "instrument": "madrs",
                                    "authored_at": _t(follow_up, 9, 30), "timepoint": "follow-up", "rater_id": "dr-alvarez",
                                    "answers": _spread(12, 10, 6)})
    add("maintenance-decisions", {"id": f"{p}-maintenance-1", "patient_id": p, "enrollment_id": enrollment,
                                  "decided_on": follow_up.isoformat(), "decision": "continue-monthly", "practitioner_id": "dr-alvarez",
                                  "rationale": "Response reached (PHQ-9 down more than 50 % from baseline); monthly maintenance to prevent relapse.",
                                  "next_review_on": (follow_up + dt.timedelta(days=90)).isoformat()})
    return out


DEMO_PATIENT = CourseSpec(
    patient_key="pt-0001",
    family_name="Rivera",
    given_name="Jordan",
    birth_date=dt.date(1984, 6, 12),
    sex="female",
    start=dt.date(2026, 3, 2),
    weight_kg=Decimal("72.5"),
    phq9_trajectory=(19, 15, 11, 8, 6),
)


def demo_course() -> list[Payload]:
    """The demo clinic and its demo patient's complete IV course."""
    return clinic_payloads() + course_payloads(DEMO_PATIENT)


FAMILY = ("Nguyen", "Patel", "Kim", "Garcia", "Smith", "Johnson", "Okoye", "Larsen", "Haddad", "Moreau")
GIVEN = ("Alex", "Sam", "Taylor", "Morgan", "Casey", "Riley", "Jamie", "Avery", "Quinn", "Drew")


def generated_specs(count: int, seed: int = 7) -> Iterator[CourseSpec]:
    """`count` varied course specs (deterministic for a seed)."""
    rng = random.Random(seed)
    for index in range(count):
        baseline = rng.randint(12, 24)
        responds = rng.random() < 0.65  # programme literature: ~60-70 % respond (program.md)
        end = rng.randint(2, baseline // 2) if responds else rng.randint(baseline * 6 // 10, baseline)
        trajectory = tuple(round(baseline + (end - baseline) * step / 4) for step in range(5))
        esketamine = rng.random() < 0.25
        yield CourseSpec(
            patient_key=f"gen-{seed}-{index:06d}",
            family_name=rng.choice(FAMILY),
            given_name=rng.choice(GIVEN),
            birth_date=dt.date(rng.randint(1950, 2002), rng.randint(1, 12), rng.randint(1, 28)),
            sex=rng.choice(("female", "male")),
            start=dt.date(2026, 1, 5) + dt.timedelta(days=rng.randint(0, 200)),
            weight_kg=Decimal(rng.randint(480, 1100)) / Decimal(10),
            phq9_trajectory=trajectory,
            sessions=rng.choice((4, 6, 6, 8)) if not esketamine else 8,
            agent="esketamine" if esketamine else "ketamine",
            route="intranasal" if esketamine else "intravenous",
            nausea_on_session=rng.choice((None, None, 1, 2, 3)),
        )


def generated_courses(count: int, seed: int = 7, setup: ClinicSetup = ClinicSetup()) -> Iterator[Payload]:
    """The clinic followed by `count` generated courses."""
    yield from clinic_payloads(setup)
    for spec in generated_specs(count, seed):
        yield from course_payloads(spec, setup)
