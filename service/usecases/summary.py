"""The course summary of one patient: sessions, integration sessions, scores with their
trajectory, current outcome status, latest maintenance decision, safety flags and the
treatment-resistance assessment. Read-only; computed from the stored records with the
domain rules (`service.domain.scoring`, `.outcomes`, `.eligibility`)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable

from ..domain.administration import AdministrationSession
from ..domain.eligibility import BloodPressureThreshold, pre_dose_bp_flag, screen_flags, treatment_resistance
from ..domain.enrollment import Enrollment
from ..domain.maintenance import MaintenanceDecision
from ..domain.monitoring import VitalsPhase, VitalsReading
from ..domain.outcomes import OutcomeRules, OutcomeStatus, ScorePoint, trajectory
from ..domain.patient import Patient
from ..domain.psychotherapy import IntegrationSession
from ..domain.questionnaires import QuestionnaireAnswers
from ..domain.records import RECORD_KINDS
from ..domain.scoring import Instrument
from ..domain.screening import ContraindicationScreen, MedicalClearance, MedicationTrial
from ..store import UnitOfWork
from .errors import NotFound

TRAJECTORY_INSTRUMENTS = (Instrument.PHQ9, Instrument.MADRS)


@dataclass(frozen=True)
class SummaryRules:
    """Configurable thresholds (from settings)."""

    outcome: OutcomeRules = OutcomeRules()
    blood_pressure: BloodPressureThreshold = BloodPressureThreshold()


def _num(value: Decimal | None) -> float | int | None:
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(round(value, 3))


def _load(records: list, kind: str) -> list:
    model = RECORD_KINDS[kind].model
    return [model.model_validate(r.data) for r in records if r.kind == kind]


def course_summary(
    uow: UnitOfWork,
    clinic_id: str,
    patient_id: str,
    rules: SummaryRules = SummaryRules(),
    today: Callable[[], dt.date] = dt.date.today,
) -> dict[str, Any]:
    """The summary document of one patient's course (see module docstring)."""
    with uow:
        patient_row = uow.records.get("patients", clinic_id, patient_id)
        if patient_row is None:
            raise NotFound(f"no patient {patient_id!r} in clinic {clinic_id!r}")
        records = uow.records.for_patient(clinic_id, patient_id)
    patient = Patient.model_validate(patient_row.data)
    as_of = today()

    enrollments: list[Enrollment] = sorted(_load(records, "enrollments"), key=lambda e: (e.start_date, e.id))
    sessions: list[AdministrationSession] = sorted(_load(records, "administration-sessions"), key=lambda s: (s.started_at, s.id))
    integrations: list[IntegrationSession] = sorted(_load(records, "integration-sessions"), key=lambda s: (s.started_at, s.id))
    responses: list[QuestionnaireAnswers] = sorted(
        _load(records, "questionnaire-responses"), key=lambda q: (q.authored_at, q.id)
    )
    decisions: list[MaintenanceDecision] = sorted(
        _load(records, "maintenance-decisions"), key=lambda d: (d.decided_on, d.id)
    )
    screens: list[ContraindicationScreen] = sorted(
        _load(records, "contraindication-screens"), key=lambda s: (s.screened_on, s.id)
    )
    clearances: list[MedicalClearance] = sorted(_load(records, "medical-clearances"), key=lambda c: (c.assessed_on, c.id))
    trials: list[MedicationTrial] = _load(records, "medication-trials")
    vitals: list[VitalsReading] = sorted(_load(records, "vitals"), key=lambda v: (v.taken_at, v.id))

    scores: dict[str, Any] = {}
    outcomes: dict[str, Any] = {}
    flags: list[dict[str, Any]] = []
    for instrument in Instrument:
        answered = [q for q in responses if q.instrument is instrument]
        if not answered:
            continue
        points = []
        for q in answered:
            result = q.result()
            points.append(
                {
                    "record_id": q.id,
                    "authored_at": q.authored_at.isoformat(),
                    "timepoint": q.timepoint.value,
                    "total": result.total,
                    "band": result.band,
                    "flags": list(result.flags),
                    "subscores": dict(result.subscores),
                    "risk_level": result.risk_level.value if result.risk_level else None,
                }
            )
            for flag in result.flags:
                if flag == "phq9-item9-positive":
                    flags.append({"kind": "suicidality", "item": flag, "reason": "PHQ-9 item 9 answered above 0",
                                  "record_id": q.id, "when": q.authored_at.isoformat()})
                elif flag.startswith("suicide-risk-"):
                    flags.append({"kind": "suicidality", "item": flag, "reason": f"C-SSRS screener risk {result.risk_level}",
                                  "record_id": q.id, "when": q.authored_at.isoformat()})
        entry: dict[str, Any] = {"responses": points}
        if instrument in TRAJECTORY_INSTRUMENTS:
            track = trajectory(
                instrument,
                [ScorePoint(q.authored_at, q.result().total or 0, q.id) for q in answered],
                rules.outcome,
            )
            entry["trajectory"] = [
                {
                    "record_id": p.point.record_id,
                    "when": p.point.when.isoformat(),
                    "total": p.point.total,
                    "reduction": float(p.reduction) if p.reduction is not None else None,
                    "status": p.status.value,
                }
                for p in track
            ]
            current = track[-1].status if len(track) > 1 else OutcomeStatus.NOT_EVALUABLE
            outcomes[instrument.value] = {"status": current.value, "rule": rules.outcome.describe(instrument)}
        totals = [p["total"] for p in points if p["total"] is not None]
        if len(totals) >= 2:
            entry["change_from_first"] = totals[-1] - totals[0]
            entry["trend"] = "improving" if totals[-1] < totals[0] else "worsening" if totals[-1] > totals[0] else "stable"
        scores[instrument.value] = entry

    if screens:
        latest = screens[-1]
        for flag in screen_flags(latest, rules.blood_pressure):
            flags.append({"kind": flag.kind, "item": flag.item, "reason": flag.reason, "record_id": latest.id,
                          "when": latest.screened_on.isoformat()})
    for reading in vitals:
        if reading.phase is VitalsPhase.PRE_DOSE and reading.systolic_mmhg is not None and reading.diastolic_mmhg is not None:
            bp = pre_dose_bp_flag(reading.systolic_mmhg, reading.diastolic_mmhg, rules.blood_pressure)
            if bp:
                flags.append({"kind": "pre-dose-blood-pressure", "item": bp.item, "reason": bp.reason,
                              "record_id": reading.id, "when": reading.taken_at.isoformat()})

    resistance = treatment_resistance(trials, as_of)
    latest_decision = decisions[-1] if decisions else None
    latest_clearance = clearances[-1] if clearances else None
    return {
        "clinic_id": clinic_id,
        "patient_id": patient_id,
        "as_of": as_of.isoformat(),
        "patient": {"age": patient.age_on(as_of), "sex": patient.sex.value},
        "enrollments": [
            {"id": e.id, "course_type": e.course_type.value, "status": e.status.value,
             "start_date": e.start_date.isoformat(), "end_date": e.end_date.isoformat() if e.end_date else None}
            for e in enrollments
        ],
        "sessions": [
            {
                "id": s.id,
                "date": s.started_at.isoformat(),
                "agent": s.agent.value,
                "route": s.route.value,
                "status": s.status.value,
                "dose_mg": _num(s.dose_mg),
                "dose_mg_per_kg": _num(s.administered_mg_per_kg),
                "duration_minutes": _num(s.infusion_minutes),
                "observation_minutes": _num(s.observation_minutes),
                "devices": s.esketamine_devices,
            }
            for s in sessions
        ],
        "integration_sessions": [
            {"id": i.id, "date": i.started_at.isoformat(), "modality": i.modality.value, "minutes": i.minutes,
             "follows_session_id": i.follows_session_id}
            for i in integrations
        ],
        "scores": scores,
        "outcomes": outcomes,
        "maintenance": (
            {"id": latest_decision.id, "decided_on": latest_decision.decided_on.isoformat(),
             "decision": latest_decision.decision.value, "rationale": latest_decision.rationale,
             "next_review_on": latest_decision.next_review_on.isoformat() if latest_decision.next_review_on else None}
            if latest_decision else None
        ),
        "medical_clearance": (
            {"id": latest_clearance.id, "assessed_on": latest_clearance.assessed_on.isoformat(),
             "cleared": latest_clearance.cleared,
             "valid_until": latest_clearance.valid_until.isoformat() if latest_clearance.valid_until else None}
            if latest_clearance else None
        ),
        "safety_flags": flags,
        "treatment_resistance": {
            "met": resistance.met,
            "rule": resistance.rule,
            "adequate_failed_trials": list(resistance.adequate_failed_trials),
            "trials": [
                {"id": a.trial_id, "adequate": a.adequate, "failed": a.failed, "reasons": list(a.reasons)}
                for a in resistance.assessments
            ],
        },
    }
