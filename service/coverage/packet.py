"""The medical-necessity packet: a 2-3 page PDF a payer reviewer can read in two minutes, stored
as a FHIR DocumentReference (US Core DocumentReference + Da Vinci PAS profile-documentreference)
that can be attached to a PAS request.

    packet = build_packet(uow, "riverbend", "pt-0001", today=date(2026, 4, 1), rules=SummaryRules())
    packet.pdf                  # the PDF bytes
    packet.document_reference   # the stored DocumentReference (meta.versionId set)
    packet.summary              # what the packet says, as JSON (the PDF is rendered from it)
    packet_supporting_info(packet.document_reference)  # -> Claim.supportingInfo entry

Content (program.md "Why coverage documentation matters"): patient and diagnosis (ICD-10-CM with
episode/severity), treatment-resistance history (each prior trial: drug, dose, weeks, adequate?,
outcome, and whether >= 2 adequate failed trials is met, with the rule), safety screening
(contraindication screen, medical clearance, C-SSRS risk, PHQ-9 item 9 flags), a chart of PHQ-9
and MADRS over time with the baseline, response (50 % of baseline) and remission thresholds
(clinical-coding.md §1.6) and the sessions on the time axis, the sessions given with doses,
integration psychotherapy by modality and minutes only (no note content is stored or shown),
adverse events, and the current outcome status with the rule applied.

Codes (verified against the PAS 2.2.1 package the validator loads, /work/shared/fhir-packages):
- DocumentReference.type: LOINC 103595-5 "Certificate of Medical Necessity" — a member of PAS
  2.2.1 ValueSet pas-loinc-attachment-codes (LOINC attachment codes a payer can request);
  LOINC 2.77 term, SCALE_TYP Doc (HL7 termchangeset-ig, LOINC 2.77 attachments change set), so it
  is in US Core's DocumentReference type value set (LOINC SCALE = DOC).
- DocumentReference.category: us-core-documentreference-category#clinical-note (US Core).
- Claim.supportingInfo category PASTempCodes#additionalInformation; documentInformation
  reportTypeCode X12 755 "PY" Physician's Report and transmissionMethod X12 756 "EL"
  Electronically Only, as in PAS 2.2.1's Claim-ReferralAuthorizationExample.

The example page docs/examples/necessity-packet-page1.png is page 1 of the demo course's packet
(`service.courses.demo_course()`, generated 2026-04-06), rendered with `pdftoppm -r 110 -png`.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from html import escape
from typing import Any, Callable

import orjson

from ..domain.administration import AdministrationSession
from ..domain.coverage import CoverageRecord
from ..domain.eligibility import (
    REQUIRED_FAILED_TRIALS,
    TreatmentResistance,
    pre_dose_bp_flag,
    screen_flags,
    treatment_resistance,
)
from ..domain.enrollment import Enrollment
from ..domain.maintenance import MaintenanceDecision
from ..domain.monitoring import AdverseEvent, VitalsPhase, VitalsReading
from ..domain.organization import Clinic, Practitioner, PractitionerRoleKind
from ..domain.outcomes import OutcomeStatus, ScorePoint, trajectory
from ..domain.patient import Patient
from ..domain.psychotherapy import IntegrationSession, Modality
from ..domain.questionnaires import QuestionnaireAnswers
from ..domain.records import RECORD_KINDS
from ..domain.scoring import PHQ9_SUICIDALITY_ITEM, SPECS, Instrument
from ..domain.screening import (
    CONTRAINDICATIONS,
    ContraindicationScreen,
    Diagnosis,
    MedicalClearance,
    MedicationTrial,
    classify_mdd,
)
from ..fhir import MappingContext
from ..fhir.elements import US_CORE, prune
from ..fhir.narrative import XHTML
from ..store import UnitOfWork
from ..terminology import TerminologyError, concept, concepts
from ..usecases.errors import NotFound
from ..usecases.summary import SummaryRules

SOURCE_KIND = "packet"
"""Store source kind of packet DocumentReferences (`uow.resources.by_source("packet", ...)`)."""
IDENTIFIER_KIND = "medical-necessity-packets"

US_CORE_DOCUMENTREFERENCE = US_CORE + "us-core-documentreference"
PAS_DOCUMENTREFERENCE = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/profile-documentreference"
PAS_DOCUMENT_INFORMATION = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/extension-documentInformation"
PAS_TEMP_CODES = "http://hl7.org/fhir/us/davinci-pas/CodeSystem/PASTempCodes"

DOCUMENT_TYPE = {"system": "http://loinc.org", "code": "103595-5", "display": "Certificate of Medical Necessity"}
DOCUMENT_CATEGORY = {
    "system": "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
    "code": "clinical-note",
    "display": "Clinical Note",
}
X12_REPORT_TYPE_PHYSICIANS_REPORT = {"system": "https://codesystem.x12.org/005010/755", "code": "PY", "display": "Physician's Report"}
X12_TRANSMISSION_ELECTRONIC = {"system": "https://codesystem.x12.org/005010/756", "code": "EL", "display": "Electronically Only"}

TITLE = "Medical necessity summary: ketamine-assisted treatment of treatment-resistant depression"

ROUTE_LABEL = {"intravenous": "IV", "intramuscular": "IM", "sublingual": "SL", "intranasal": "nasal", "oral": "oral"}
MODALITY_LABEL = {
    Modality.EMDR: "EMDR", Modality.ART: "ART", Modality.IFS: "IFS", Modality.CBT: "CBT",
    Modality.BEHAVIOURAL_ACTIVATION: "Behavioural activation", Modality.PREPARATION: "Preparation",
}
INSTRUMENT_LABEL = {Instrument.PHQ9: "PHQ-9", Instrument.MADRS: "MADRS"}


@dataclass(frozen=True)
class Packet:
    pdf: bytes
    document_reference: dict
    summary: dict
    write_status: str = "created"
    """created | updated | unchanged (the same PDF was already stored for this date)."""


# --------------------------------------------------------------------------- loading


@dataclass
class PacketRecords:
    """Everything the packet reads about one patient (typed domain records)."""

    clinic: Clinic
    patient: Patient
    practitioners: dict[str, Practitioner] = field(default_factory=dict)
    records: dict[str, list[Any]] = field(default_factory=dict)

    def of(self, kind: str) -> list[Any]:
        return list(self.records.get(kind, []))


def load_records(uow: UnitOfWork, clinic_id: str, patient_id: str) -> PacketRecords:
    """Read the patient's records inside an open unit of work; NotFound when absent."""
    clinic_row = uow.records.get("clinics", clinic_id, clinic_id)
    patient_row = uow.records.get("patients", clinic_id, patient_id)
    if clinic_row is None or patient_row is None:
        raise NotFound(f"no patient {patient_id!r} in clinic {clinic_id!r}")
    loaded = PacketRecords(Clinic.model_validate(clinic_row.data), Patient.model_validate(patient_row.data))
    for row in uow.records.for_patient(clinic_id, patient_id):
        if row.kind in RECORD_KINDS and row.kind != "patients":
            loaded.records.setdefault(row.kind, []).append(RECORD_KINDS[row.kind].model.model_validate(row.data))
    for row in uow.records.list("practitioners", clinic_id=clinic_id, limit=500):
        practitioner = Practitioner.model_validate(row.data)
        loaded.practitioners[practitioner.id] = practitioner
    return loaded


# --------------------------------------------------------------------------- the summary


def _num(value: Decimal | None, places: str = "0.01") -> float | int | None:
    if value is None:
        return None
    value = value.quantize(Decimal(places))
    return int(value) if value == value.to_integral_value() else float(value)


def _person(p: Practitioner | None) -> dict | None:
    if p is None:
        return None
    name = " ".join([*p.given_names, p.family_name])
    if p.credentials:
        name += ", " + " ".join(p.credentials)
    return {"id": p.id, "name": name, "npi": p.npi, "role": p.role.value}


def _dx_display(icd10: str) -> str:
    for entry in concepts("diagnoses").values():
        if entry.get("system") == "http://hl7.org/fhir/sid/icd-10-cm" and entry.get("code") == icd10:
            return entry["display"]
    return icd10


def _drug(drug: str) -> tuple[str, str | None]:
    try:
        c = concept("antidepressants", drug)
        return c.display, c.extra.get("drug_class")
    except TerminologyError:
        return drug.replace("_", " "), None


def _event_display(event: str) -> str:
    try:
        display = concept("adverse-events", event).display
    except TerminologyError:
        return event.replace("_", " ")
    return display.replace(" (finding)", "").replace(" (disorder)", "")


def _author(records: PacketRecords) -> Practitioner | None:
    """The prescriber: most sessions' prescriber, else the course's care manager, else any
    prescriber of the clinic."""
    sessions: list[AdministrationSession] = records.of("administration-sessions")
    counted = Counter(s.prescriber_id for s in sessions if s.prescriber_id)
    for key, _ in counted.most_common():
        if key in records.practitioners:
            return records.practitioners[key]
    for enrollment in sorted(records.of("enrollments"), key=lambda e: (e.start_date, e.id), reverse=True):
        if enrollment.care_manager_id in records.practitioners:
            return records.practitioners[enrollment.care_manager_id]
    return next((p for p in records.practitioners.values() if p.role is PractitionerRoleKind.PRESCRIBER), None)


def _thresholds(instrument: Instrument, baseline: int, rules: SummaryRules) -> dict[str, Any]:
    o = rules.outcome
    response_at = float(Decimal(baseline) * (1 - o.response_reduction))
    if instrument is Instrument.PHQ9:
        return {"response_at_or_below": response_at, "remission_line": o.phq9_remission_below,
                "remission_label": f"remission < {o.phq9_remission_below}",
                "rule": f"response: total >= {int(o.response_reduction * 100)}% below baseline; remission: total < "
                        f"{o.phq9_remission_below} (CMS159 / NCQA DRR-E); evaluable when baseline > {o.phq9_index_above}"}
    return {"response_at_or_below": response_at, "remission_line": o.madrs_remission_at_most,
            "remission_label": f"remission <= {o.madrs_remission_at_most}",
            "rule": f"response: total >= {int(o.response_reduction * 100)}% below baseline; remission: total <= "
                    f"{o.madrs_remission_at_most} (configured cut; Hawley 2002 / ketamine trial convention)"}


def _scores(answers: list[QuestionnaireAnswers], rules: SummaryRules) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for instrument in (Instrument.PHQ9, Instrument.MADRS):
        mine = sorted((a for a in answers if a.instrument is instrument), key=lambda a: (a.authored_at, a.id))
        if not mine:
            continue
        points = [ScorePoint(a.authored_at, a.result().total or 0, a.id) for a in mine]
        track = trajectory(instrument, points, rules.outcome)
        by_id = {a.id: a for a in mine}
        baseline = track[0].point.total
        rows = []
        for p in track:
            a = by_id[p.point.record_id]
            rows.append({
                "record_id": a.id, "date": a.authored_at.date().isoformat(), "timepoint": a.timepoint.value,
                "total": p.point.total, "band": a.result().band,
                "reduction_percent": round(float(p.reduction) * 100) if p.reduction is not None else None,
                "status": p.status.value,
            })
        current = track[-1].status if len(track) > 1 else OutcomeStatus.NOT_EVALUABLE
        out[instrument.value] = {
            "label": INSTRUMENT_LABEL[instrument], "max_total": SPECS[instrument].max_total, "baseline": baseline,
            "latest": track[-1].point.total, "points": rows, "status": current.value,
            **_thresholds(instrument, baseline, rules),
        }
    return out


def _safety(records: PacketRecords, rules: SummaryRules) -> dict[str, Any]:
    screens: list[ContraindicationScreen] = sorted(records.of("contraindication-screens"), key=lambda s: (s.screened_on, s.id))
    clearances: list[MedicalClearance] = sorted(records.of("medical-clearances"), key=lambda c: (c.assessed_on, c.id))
    answers: list[QuestionnaireAnswers] = sorted(records.of("questionnaire-responses"), key=lambda a: (a.authored_at, a.id))
    vitals: list[VitalsReading] = sorted(records.of("vitals"), key=lambda v: (v.taken_at, v.id))
    screen = None
    if screens:
        s = screens[-1]
        present = [f.item.value for f in s.findings if f.present]
        screen = {
            "id": s.id, "date": s.screened_on.isoformat(), "by": _person(records.practitioners.get(s.practitioner_id)),
            "items_screened": len(s.findings),
            "contraindications_screened": sum(1 for f in s.findings if f.item in CONTRAINDICATIONS),
            "present": present,
            "blood_pressure": f"{s.systolic_mmhg}/{s.diastolic_mmhg}" if s.systolic_mmhg else None,
            "bp_threshold": f"{rules.blood_pressure.systolic}/{rules.blood_pressure.diastolic}",
            "flags": [{"kind": f.kind, "item": f.item, "reason": f.reason} for f in screen_flags(s, rules.blood_pressure)],
        }
    clearance = None
    if clearances:
        c = clearances[-1]
        clearance = {"id": c.id, "date": c.assessed_on.isoformat(), "cleared": c.cleared,
                     "valid_until": c.valid_until.isoformat() if c.valid_until else None, "summary": c.summary,
                     "by": _person(records.practitioners.get(c.practitioner_id))}
    cssrs = [
        {"id": a.id, "date": a.authored_at.date().isoformat(), "timepoint": a.timepoint.value,
         "risk": (a.result().risk_level.value if a.result().risk_level else "none")}
        for a in answers if a.instrument is Instrument.CSSRS_SCREENER
    ]
    item9 = [
        {"id": a.id, "date": a.authored_at.date().isoformat(), "timepoint": a.timepoint.value,
         "item9": int(a.answers[PHQ9_SUICIDALITY_ITEM])}
        for a in answers if a.instrument is Instrument.PHQ9 and int(a.answers.get(PHQ9_SUICIDALITY_ITEM, 0)) > 0
    ]
    bp_flags = []
    for reading in vitals:
        if reading.phase is VitalsPhase.PRE_DOSE and reading.systolic_mmhg is not None and reading.diastolic_mmhg is not None:
            flag = pre_dose_bp_flag(reading.systolic_mmhg, reading.diastolic_mmhg, rules.blood_pressure)
            if flag:
                bp_flags.append({"id": reading.id, "date": reading.taken_at.date().isoformat(), "reason": flag.reason})
    pre_dose = [v for v in vitals if v.phase is VitalsPhase.PRE_DOSE and v.systolic_mmhg is not None]
    return {
        "screen": screen, "clearance": clearance, "cssrs": cssrs, "phq9_item9_positive": item9,
        "pre_dose_bp_flags": bp_flags, "pre_dose_readings": len(pre_dose),
        "max_intra_session_bp": _max_bp(v for v in vitals if v.phase is not VitalsPhase.SCREENING),
    }


def _max_bp(readings: Any) -> str | None:
    best = max((r for r in readings if r.systolic_mmhg is not None), key=lambda r: (r.systolic_mmhg, r.diastolic_mmhg), default=None)
    return f"{best.systolic_mmhg}/{best.diastolic_mmhg}" if best else None


def _trials(trials: list[MedicationTrial], resistance: TreatmentResistance, as_of: dt.date) -> list[dict]:
    by_id = {a.trial_id: a for a in resistance.assessments}
    rows = []
    for t in sorted(trials, key=lambda t: (t.start_date, t.id)):
        a = by_id[t.id]
        name, drug_class = _drug(t.drug)
        rows.append({
            "id": t.id, "drug": name, "drug_class": drug_class, "daily_dose_mg": _num(t.daily_dose_mg),
            "start_date": t.start_date.isoformat(), "end_date": t.end_date.isoformat() if t.end_date else None,
            "weeks": float(t.duration_weeks(as_of)), "adequate_dose": t.adequate_dose, "adequate": a.adequate,
            "outcome": t.outcome.value, "counts_toward_trd": a.adequate and a.failed, "reasons": list(a.reasons),
            "source": t.source.value,
        })
    return rows


def _sessions(records: PacketRecords) -> tuple[list[dict], list[dict], dict]:
    sessions: list[AdministrationSession] = sorted(records.of("administration-sessions"), key=lambda s: (s.started_at, s.id))
    integrations: list[IntegrationSession] = sorted(records.of("integration-sessions"), key=lambda s: (s.started_at, s.id))
    following: dict[str, list[IntegrationSession]] = {}
    for i in integrations:
        if i.follows_session_id:
            following.setdefault(i.follows_session_id, []).append(i)
    rows = []
    for number, s in enumerate(sessions, start=1):
        rows.append({
            "number": number, "id": s.id, "date": s.started_at.date().isoformat(),
            "time": s.started_at.strftime("%H:%M"), "agent": s.agent.value, "route": s.route.value,
            "dose_mg": _num(s.dose_mg), "mg_per_kg": _num(s.administered_mg_per_kg, "0.001"),
            "prescribed_mg_per_kg": _num(s.prescribed_mg_per_kg, "0.001"), "weight_kg": _num(s.weight_kg, "0.1"),
            "duration_minutes": _num(s.infusion_minutes, "1"), "observation_minutes": _num(s.observation_minutes, "1"),
            "devices": s.esketamine_devices, "status": s.status.value, "status_reason": s.status_reason,
            "premedications": [f"{p.drug.replace('_', ' ')} {_num(p.dose_mg)} mg {ROUTE_LABEL.get(p.route.value, p.route.value)}"
                               for p in s.premedications],
            "integration": [{"date": i.started_at.date().isoformat(), "modality": MODALITY_LABEL[i.modality], "minutes": i.minutes}
                            for i in following.get(s.id, [])],
        })
    preparation = [{"date": i.started_at.date().isoformat(), "minutes": i.minutes}
                   for i in integrations if i.modality is Modality.PREPARATION]
    therapy = [i for i in integrations if i.modality is not Modality.PREPARATION]
    totals = {
        "sessions": len(therapy),
        "minutes": sum(i.minutes or 0 for i in therapy),
        "modalities": dict(Counter(MODALITY_LABEL[i.modality] for i in therapy)),
        "note": "Modality and minutes only; psychotherapy note content is not stored or disclosed.",
    }
    return rows, preparation, totals


def packet_summary(records: PacketRecords, today: dt.date, rules: SummaryRules) -> dict[str, Any]:
    """What the packet says, as JSON; the PDF is rendered from this document only."""
    patient = records.patient
    diagnoses: list[Diagnosis] = sorted(records.of("diagnoses"), key=lambda d: (classify_mdd(d.icd10) is None, d.recorded_on, d.id))
    trials: list[MedicationTrial] = records.of("medication-trials")
    resistance = treatment_resistance(trials, today)
    enrollments: list[Enrollment] = sorted(records.of("enrollments"), key=lambda e: (e.start_date, e.id))
    coverages: list[CoverageRecord] = sorted(records.of("coverages"), key=lambda c: (c.period_start, c.id))
    decisions: list[MaintenanceDecision] = sorted(records.of("maintenance-decisions"), key=lambda d: (d.decided_on, d.id))
    events: list[AdverseEvent] = sorted(records.of("adverse-events"), key=lambda e: (e.occurred_at, e.id))
    sessions, preparation, therapy = _sessions(records)
    number_of = {s["id"]: s["number"] for s in sessions}
    author = _author(records)
    trial_rows = _trials(trials, resistance, today)
    scores = _scores(records.of("questionnaire-responses"), rules)

    dx_rows = []
    for d in diagnoses:
        mdd = classify_mdd(d.icd10)
        dx_rows.append({
            "id": d.id, "icd10": d.icd10, "display": _dx_display(d.icd10),
            "episode": mdd.episode if mdd else None, "severity": mdd.severity if mdd else None,
            "clinical_status": d.clinical_status.value, "verification_status": d.verification_status.value,
            "onset_date": d.onset_date.isoformat() if d.onset_date else None, "recorded_on": d.recorded_on.isoformat(),
        })
    enrollment = enrollments[-1] if enrollments else None
    coverage = next((c for c in reversed(coverages) if c.active_on(today)), coverages[-1] if coverages else None)
    decision = decisions[-1] if decisions else None
    return {
        "title": TITLE,
        "generated_on": today.isoformat(),
        "clinic": {"id": records.clinic.id, "name": records.clinic.name, "npi": records.clinic.npi,
                   "phone": records.clinic.phone,
                   "address": _address(records.clinic.address)},
        "patient": {"id": patient.id, "name": " ".join([*patient.given_names, patient.family_name]),
                    "family_name": patient.family_name, "given_names": list(patient.given_names),
                    "birth_date": patient.birth_date.isoformat(), "age": patient.age_on(today), "sex": patient.sex.value,
                    "mrn": patient.mrn},
        "author": _person(author),
        "enrollment": ({"id": enrollment.id, "course_type": enrollment.course_type.value, "status": enrollment.status.value,
                        "start_date": enrollment.start_date.isoformat(),
                        "end_date": enrollment.end_date.isoformat() if enrollment.end_date else None,
                        "planned_sessions": enrollment.planned_sessions} if enrollment else None),
        "coverage": ({"payer": coverage.payer, "member_id": coverage.member_id, "plan_name": coverage.plan_name,
                      "group_id": coverage.group_id} if coverage else None),
        "diagnoses": dx_rows,
        "treatment_resistance": {
            "met": resistance.met, "rule": resistance.rule, "required_failed_trials": REQUIRED_FAILED_TRIALS,
            "adequate_failed_trials": [r["drug"] for r in trial_rows if r["counts_toward_trd"]],
            "trials": trial_rows,
        },
        "safety": _safety(records, rules),
        "scores": scores,
        "sessions": sessions,
        "preparation": preparation,
        "psychotherapy": therapy,
        "adverse_events": [
            {"id": e.id, "date": e.occurred_at.date().isoformat(), "session_number": number_of.get(e.session_id or ""),
             "event": _event_display(e.event), "severity": e.severity.value, "serious": e.serious,
             "actions": [a.value for a in e.actions], "outcome": e.outcome.value}
            for e in events
        ],
        "outcome": {k: {"status": v["status"], "baseline": v["baseline"], "latest": v["latest"],
                        "reduction_percent": v["points"][-1]["reduction_percent"], "rule": v["rule"]}
                    for k, v in scores.items()},
        "maintenance": ({"decided_on": decision.decided_on.isoformat(), "decision": decision.decision.value,
                         "rationale": decision.rationale,
                         "next_review_on": decision.next_review_on.isoformat() if decision.next_review_on else None}
                        if decision else None),
    }


def _address(addr: Any) -> str | None:
    if addr is None:
        return None
    parts = [", ".join(addr.line)] if addr.line else []
    city = ", ".join(x for x in (addr.city, " ".join(x for x in (addr.state, addr.postal_code) if x)) if x)
    if city:
        parts.append(city)
    return ", ".join(parts) or None


# --------------------------------------------------------------------------- FHIR


def packet_key(patient_id: str, today: dt.date) -> str:
    """Business key of a patient's packet of one generation date (the store source key)."""
    return f"{patient_id}.{today.isoformat()}"


def packet_document_reference(
    summary: dict[str, Any], pdf: bytes, ctx: MappingContext, *, generated_at: dt.datetime
) -> dict[str, Any]:
    """The DocumentReference of a packet (US Core DocumentReference + PAS profile-documentreference)."""
    patient_id = summary["patient"]["id"]
    today = dt.date.fromisoformat(summary["generated_on"])
    key = packet_key(patient_id, today)
    title = f"Medical necessity packet - {summary['patient']['name']} - {today.isoformat()}"
    author = summary.get("author")
    enrollment = summary.get("enrollment") or {}
    sessions = summary.get("sessions") or []
    period = {"start": enrollment.get("start_date") or (sessions[0]["date"] if sessions else None),
              "end": sessions[-1]["date"] if sessions else None}
    if period["start"] and period["end"] and period["end"] < period["start"]:
        period["end"] = None
    description = (f"Medical necessity summary for ketamine-assisted treatment of treatment-resistant depression "
                   f"({len(sessions)} sessions), generated {today.isoformat()} from the clinic's records.")
    resource = {
        "resourceType": "DocumentReference",
        "id": ctx.id("DocumentReference", IDENTIFIER_KIND, key),
        "meta": {"profile": [US_CORE_DOCUMENTREFERENCE, PAS_DOCUMENTREFERENCE]},
        "text": {"status": "generated", "div": (
            f'<div xmlns="{XHTML}"><p><b>DocumentReference</b>: {escape(title)} (current, application/pdf, '
            f'{len(pdf)} bytes)</p><p>{escape(description)}</p></div>')},
        "identifier": [ctx.identifier(IDENTIFIER_KIND, key, use="official")],
        "status": "current",
        "type": {"coding": [dict(DOCUMENT_TYPE)], "text": "Medical necessity packet"},
        "category": [{"coding": [dict(DOCUMENT_CATEGORY)]}],
        "subject": ctx.patient_ref(patient_id),
        "date": generated_at.isoformat(timespec="seconds"),
        "author": [ctx.practitioner_ref(author["id"])] if author else [ctx.organization_ref()],
        "custodian": ctx.organization_ref(),
        "description": description,
        "content": [{
            "attachment": {
                "contentType": "application/pdf",
                "language": "en-US",
                "data": base64.b64encode(pdf).decode("ascii"),
                "size": len(pdf),
                "hash": base64.b64encode(hashlib.sha1(pdf).digest()).decode("ascii"),
                "title": title,
                "creation": generated_at.isoformat(timespec="seconds"),
            },
        }],
        "context": {"period": period},
    }
    return prune(resource)


def packet_supporting_info(document_reference: dict[str, Any], sequence: int = 1) -> dict[str, Any]:
    """The PAS Claim.supportingInfo entry (slice AdditionalInformation) attaching this packet.

    category PASTempCodes#additionalInformation; extension documentInformation with the
    required reportTypeCode (X12 755 PY, Physician's Report), transmissionMethod (X12 756 EL,
    electronically only) and a description; valueReference -> the DocumentReference. Include
    the DocumentReference itself as an entry of the PAS request Bundle (every referenced
    resource must be in it)."""
    attachment = document_reference["content"][0]["attachment"]
    return {
        "extension": [{
            "url": PAS_DOCUMENT_INFORMATION,
            "extension": [
                {"url": "reportTypeCode", "valueCodeableConcept": {"coding": [dict(X12_REPORT_TYPE_PHYSICIANS_REPORT)]}},
                {"url": "transmissionMethod", "valueCodeableConcept": {"coding": [dict(X12_TRANSMISSION_ELECTRONIC)]}},
                {"url": "description", "valueString": attachment.get("title") or "Medical necessity packet"},
            ],
        }],
        "sequence": sequence,
        "category": {"coding": [{"system": PAS_TEMP_CODES, "code": "additionalInformation"}]},
        "valueReference": {"reference": f"DocumentReference/{document_reference['id']}"},
    }


# --------------------------------------------------------------------------- build + store


def _as_date(today: dt.date | Callable[[], dt.date]) -> dt.date:
    value = today() if callable(today) else today
    return value.date() if isinstance(value, dt.datetime) else value


def build_packet(
    uow: UnitOfWork,
    clinic_id: str,
    patient_id: str,
    *,
    today: dt.date | Callable[[], dt.date],
    rules: SummaryRules = SummaryRules(),
    store: bool = True,
) -> Packet:
    """Build the packet of one patient as of `today` and (unless `store=False`) store its
    DocumentReference with an outbox row, in one transaction, with source kind `packet`.

    The id is deterministic per (clinic, patient, generation date): building again the same
    day replaces that day's packet (a new version) or, when the PDF is byte-identical, leaves
    it unchanged. NotFound when the clinic or patient does not exist."""
    from .packet_pdf import render_packet_pdf  # ReportLab loads only when a packet is built

    day = _as_date(today)
    with uow:
        records = load_records(uow, clinic_id, patient_id)
        summary = packet_summary(records, day, rules)
        pdf, pages = render_packet_pdf(summary)
        summary["pages"] = pages
        ctx = MappingContext(clinic=records.clinic)
        doc_id = ctx.id("DocumentReference", IDENTIFIER_KIND, packet_key(patient_id, day))
        existing = uow.resources.read("DocumentReference", doc_id)
        sha1 = base64.b64encode(hashlib.sha1(pdf).digest()).decode("ascii")
        if existing is not None and existing.json is not None:
            stored = orjson.loads(existing.json)
            if stored["content"][0]["attachment"].get("hash") == sha1:
                return Packet(pdf, stored, summary, "unchanged")
        resource = packet_document_reference(summary, pdf, ctx, generated_at=uow.now)
        if not store:
            return Packet(pdf, resource, summary, "not-stored")
        write = uow.resources.save(resource, clinic_id=clinic_id, source=(SOURCE_KIND, clinic_id, packet_key(patient_id, day)))
        if write.changed:
            uow.outbox.append(write)
        saved = uow.resources.read("DocumentReference", doc_id)
        uow.commit()
    assert saved is not None and saved.json is not None
    return Packet(pdf, orjson.loads(saved.json), summary, "created" if existing is None else "updated")


def read_packet(uow: UnitOfWork, packet_id: str, clinic_id: str | None = None) -> dict[str, Any]:
    """A stored packet DocumentReference by id; NotFound when absent or of another clinic."""
    with uow:
        stored = uow.resources.read("DocumentReference", packet_id)
    if stored is None or stored.json is None or (clinic_id is not None and stored.clinic_id != clinic_id):
        raise NotFound(f"no packet {packet_id!r}")
    resource = orjson.loads(stored.json)
    if not any(i.get("system", "").endswith("/" + IDENTIFIER_KIND) for i in resource.get("identifier", [])):
        raise NotFound(f"no packet {packet_id!r}")
    return resource


def packet_pdf_bytes(document_reference: dict[str, Any]) -> bytes:
    """The PDF inside a packet DocumentReference."""
    return base64.b64decode(document_reference["content"][0]["attachment"]["data"])
