"""Claim documentation per administration session: the billing lines a coder would produce,
with the reason for each, and what the documentation does NOT support (never guessed).

Rules (clinical-coding.md §4.1; `service.domain.time_based_codes`, `service.domain.billing`):
- IV infusion by documented minutes: <= 15 min push 96374; > 15 min 96365; 96366 per extra
  hour only beyond 30 min into it (first at >= 91 min total). Stop time missing -> not codable.
- IM ketamine 96372. Ketamine drug J3490 x 1 with the NDC (no NDC -> not codable).
- Esketamine: Medicare G2082 (<= 56 mg) / G2083 (> 56 mg) + KX, drug bundled, no J-code, and
  only at a REMS-certified site for an enrolled patient; other payers J0013 x mg from
  2026-01-01, S0013 before; the E/M level is not derivable from session data (reported as a note).
- Integration psychotherapy after the session by minutes: 16-37 90832, 38-52 90834, >= 53
  90837; with E/M the add-ons 90833/90836/90838; < 16 min or minutes missing -> not codable.
- Diagnosis pointers A-D (CMS-1500 item 24E) to the ICD-10-CM codes; place of service of the
  session's location.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from ..domain.administration import Agent, AdministrationSession, Route, SessionStatus
from ..domain.billing import DrugLine, esketamine_lines, ketamine_drug_line
from ..domain.coverage import CoverageRecord, PayerType
from ..domain.screening import ConditionClinicalStatus, classify_mdd
from ..domain.time_based_codes import CodedLine, NotCodable, iv_administration_lines, psychotherapy_code
from .chart import Link, PatientChart

CPT = "http://www.ama-assn.org/go/cpt"
HCPCS = "http://www.cms.gov/Medicare/Coding/HCPCSReleaseCodeSets"
NDC = "http://hl7.org/fhir/sid/ndc"
ICD10 = "http://hl7.org/fhir/sid/icd-10-cm"
POS = "https://www.cms.gov/Medicare/Coding/place-of-service-codes/Place_of_Service_Code_Set"
POINTERS = "ABCD"


def code_system(code: str) -> str:
    """CPT for five-digit codes, HCPCS Level II for a letter followed by four digits."""
    return HCPCS if code[:1].isalpha() else CPT


@dataclass(frozen=True)
class BillingLine:
    sequence: int
    code: str
    system: str
    units: int
    modifiers: tuple[str, ...]
    service_date: dt.date
    place_of_service: str
    diagnosis_pointers: tuple[str, ...]
    reason: str
    source: Link
    ndc: str | None = None
    ndc_quantity: Decimal | None = None
    ndc_unit: str | None = None
    rendering_practitioner: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence, "code": self.code, "system": self.system, "units": self.units,
            "modifiers": list(self.modifiers), "service_date": self.service_date.isoformat(),
            "place_of_service": self.place_of_service, "diagnosis_pointers": list(self.diagnosis_pointers),
            "ndc": self.ndc, "ndc_quantity": str(self.ndc_quantity) if self.ndc_quantity is not None else None,
            "ndc_unit": self.ndc_unit, "rendering_practitioner": self.rendering_practitioner,
            "reason": self.reason, "source": self.source.as_dict(),
        }


@dataclass(frozen=True)
class Unsupported:
    """A code the documentation does not support, and why."""

    what: str
    reason: str
    source: Link

    def as_dict(self) -> dict[str, Any]:
        return {"what": self.what, "reason": self.reason, "source": self.source.as_dict()}


@dataclass(frozen=True)
class ClaimDocumentation:
    clinic_id: str
    patient_id: str
    session_id: str
    service_date: dt.date
    payer: str | None
    payer_type: PayerType
    coverage_id: str | None
    diagnoses: tuple[tuple[str, str, str], ...]
    """(pointer, ICD-10-CM code, record key)."""
    lines: tuple[BillingLine, ...]
    unsupported: tuple[Unsupported, ...]
    notes: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {
            "clinic_id": self.clinic_id, "patient_id": self.patient_id, "session_id": self.session_id,
            "service_date": self.service_date.isoformat(), "payer": self.payer, "payer_type": self.payer_type.value,
            "coverage_id": self.coverage_id,
            "diagnoses": [{"pointer": p, "icd10": c, "record": k} for p, c, k in self.diagnoses],
            "lines": [line.as_dict() for line in self.lines],
            "unsupported": [u.as_dict() for u in self.unsupported],
            "notes": list(self.notes),
        }


CSV_COLUMNS = ("session_id", "service_date", "line", "code", "modifiers", "units", "place_of_service",
               "diagnosis_pointers", "icd10_codes", "ndc", "ndc_quantity", "rendering_practitioner", "reason")


def superbill_csv(docs: list[ClaimDocumentation]) -> str:
    """The superbill as CSV: one row per billing line, plus one row per unsupported code
    (code column empty, the reason says why)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for doc in docs:
        icd = {p: c for p, c, _ in doc.diagnoses}
        for line in doc.lines:
            writer.writerow([
                doc.session_id, line.service_date.isoformat(), line.sequence, line.code, " ".join(line.modifiers), line.units,
                line.place_of_service, "".join(line.diagnosis_pointers), " ".join(icd[p] for p in line.diagnosis_pointers),
                line.ndc or "", "" if line.ndc_quantity is None else f"{line.ndc_quantity} {line.ndc_unit or ''}".strip(),
                line.rendering_practitioner or "", line.reason,
            ])
        for gap in doc.unsupported:
            writer.writerow([doc.session_id, doc.service_date.isoformat(), "", "", "", "", "", "", "", "", "", "",
                             f"NOT CODED ({gap.what}): {gap.reason}"])
    return out.getvalue()


def _diagnoses(chart: PatientChart, as_of: dt.date) -> list[tuple[str, str, str]]:
    active = [d for d in chart.diagnoses if d.recorded_on <= as_of and d.clinical_status in (
        ConditionClinicalStatus.ACTIVE, ConditionClinicalStatus.RECURRENCE, ConditionClinicalStatus.RELAPSE)]
    active.sort(key=lambda d: (classify_mdd(d.icd10) is None, d.recorded_on, d.id))  # MDD first
    return [(POINTERS[i], d.icd10, d.id) for i, d in enumerate(active[: len(POINTERS)])]


def document_session(
    chart: PatientChart, session: AdministrationSession, coverage: CoverageRecord | None, payer_type: PayerType | None = None
) -> ClaimDocumentation:
    """Billing lines for one administration session and the integration session(s) after it."""
    payer_type = payer_type or (coverage.payer_type if coverage else PayerType.SELF_PAY)
    day = session.started_at.date()
    location = chart.locations.get(session.location_id)
    pos = location.place_of_service if location else "11"
    dx = _diagnoses(chart, day)
    pointers = tuple(p for p, _, _ in dx[:1]) or ()
    link = chart.link(session)
    lines: list[BillingLine] = []
    gaps: list[Unsupported] = []
    notes: list[str] = []
    if not dx:
        gaps.append(Unsupported("diagnosis", "no active diagnosis on the chart for the date of service: no diagnosis pointer", link))

    def add(code: str, units: int, reason: str, source: Link, modifiers: tuple[str, ...] = (), drug: DrugLine | None = None,
            practitioner: str | None = None) -> None:
        lines.append(BillingLine(
            len(lines) + 1, code, code_system(code), units, modifiers, day, pos, pointers, reason, source,
            drug.ndc if drug else None, drug.ndc_quantity if drug else None, drug.ndc_unit if drug else None,
            practitioner or session.practitioner_id,
        ))

    if session.status is SessionStatus.NOT_DONE:
        gaps.append(Unsupported("administration", f"session not done: {session.status_reason}", link))
    elif session.agent is Agent.KETAMINE:
        if session.route is Route.INTRAVENOUS:
            coded = iv_administration_lines(session.infusion_minutes)
            if isinstance(coded, NotCodable):
                gaps.append(Unsupported("IV administration (96365/96366)", coded.reason, link))
            else:
                for item in coded:
                    add(item.code, item.units, item.reason, link)
            if session.status is SessionStatus.STOPPED:
                notes.append(f"infusion stopped early ({session.status_reason or 'no reason recorded'}); coded by documented minutes")
        elif session.route is Route.INTRAMUSCULAR:
            add("96372", 1, "IM ketamine injection", link)
        else:
            gaps.append(Unsupported(f"{session.route.value} ketamine administration",
                                    "no administration code for self-administered sublingual/oral ketamine (E/M documents the visit)", link))
        drug = ketamine_drug_line(session.dose_mg, session.ndc)
        if isinstance(drug, NotCodable):
            gaps.append(Unsupported("ketamine drug (J3490)", drug.reason, link))
        else:
            add(drug.code, drug.units, drug.reason, link, drug.modifiers, drug)
    else:
        coded = esketamine_lines(session.dose_mg, day, payer_type, _esketamine_ndc(session))
        if isinstance(coded, NotCodable):
            gaps.append(Unsupported("esketamine", coded.reason, link))
        elif payer_type is PayerType.MEDICARE and not (chart.clinic.rems_certified and coverage and coverage.rems_patient_enrolled):
            gaps.append(Unsupported(coded[0].code + " KX", "KX attests REMS enrollment: the site is not REMS certified or the "
                                    "patient is not enrolled, so the G-code cannot be billed", link))
        else:
            for drug in coded:
                add(drug.code, drug.units, drug.reason, link, drug.modifiers, drug if drug.ndc or drug.ndc_quantity else None)
            if payer_type is not PayerType.MEDICARE:
                notes.append("E/M for the supervised session: level not derivable from session data; add the E/M the prescriber documented")
    for therapy in chart.integration_sessions:
        if therapy.follows_session_id != session.id:
            continue
        tlink = chart.link(therapy)
        coded_therapy = psychotherapy_code(therapy.minutes, therapy.with_em_visit)
        if isinstance(coded_therapy, NotCodable):
            gaps.append(Unsupported("integration psychotherapy", coded_therapy.reason, tlink))
            continue
        reason = coded_therapy.reason + f" ({therapy.modality.value}, {therapy.started_at.date().isoformat()})"
        if therapy.with_em_visit:
            reason += "; add-on: report with the E/M of the same visit"
        lines.append(BillingLine(
            len(lines) + 1, coded_therapy.code, CPT, coded_therapy.units, (), therapy.started_at.date(),
            (chart.locations[therapy.location_id].place_of_service if therapy.location_id in chart.locations else pos),
            pointers, reason, tlink, rendering_practitioner=therapy.practitioner_id,
        ))
    return ClaimDocumentation(
        chart.clinic.id, chart.patient.id, session.id, day, coverage.payer if coverage else None, payer_type,
        coverage.id if coverage else None, tuple(dx), tuple(lines), tuple(gaps), tuple(notes),
    )


def _esketamine_ndc(session: AdministrationSession) -> str | None:
    if session.ndc:
        return session.ndc
    return {"spravato_56mg_kit": "50458-028-02", "spravato_84mg_kit": "50458-028-03", "spravato_28mg_device": "50458-028-00"}.get(
        session.product
    )


def fhir_claim(doc: ClaimDocumentation, chart: PatientChart, *, coverage_ref: str | None, insurer_ref: dict | None,
               claim_id: str, created: dt.datetime) -> dict:
    """The documentation as a FHIR R4 Claim (use = claim, professional)."""
    patient_ref = chart.fhir_refs.get(("patients", chart.patient.id), [None])[0]
    org_ref = chart.fhir_refs.get(("clinics", chart.clinic.id), [None])[0]
    seq = {p: i + 1 for i, (p, _, _) in enumerate(doc.diagnoses)}
    items = []
    for line in doc.lines:
        item: dict[str, Any] = {
            "sequence": line.sequence,
            "diagnosisSequence": [seq[p] for p in line.diagnosis_pointers] or None,
            "productOrService": {"coding": [{"system": line.system, "code": line.code}]},
            "modifier": [{"coding": [{"system": HCPCS, "code": m}]} for m in line.modifiers] or None,
            "servicedDate": line.service_date.isoformat(),
            "locationCodeableConcept": {"coding": [{"system": POS, "code": line.place_of_service}]},
            "quantity": {"value": line.units},
        }
        if line.ndc:
            item["detail"] = [{
                "sequence": 1,
                "productOrService": {"coding": [{"system": NDC, "code": line.ndc}]},
                "quantity": {"value": float(line.ndc_quantity) if line.ndc_quantity is not None and line.ndc_quantity % 1 else int(line.ndc_quantity or 1),
                             "unit": line.ndc_unit or "mg", "system": "http://unitsofmeasure.org", "code": line.ndc_unit or "mg"},
            }]
        items.append({k: v for k, v in item.items() if v is not None})
    claim: dict[str, Any] = {
        "resourceType": "Claim",
        "id": claim_id,
        "identifier": [{"system": f"{chart.clinic.identifier_system.rstrip('/')}/claims", "value": f"{doc.session_id}"}],
        "status": "draft" if doc.unsupported else "active",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
        "use": "claim",
        "patient": {"reference": patient_ref} if patient_ref else {"display": chart.patient.id},
        "billablePeriod": {"start": doc.service_date.isoformat(), "end": max([doc.service_date, *[l.service_date for l in doc.lines]]).isoformat()},
        "created": created.isoformat(),
        "provider": {"reference": org_ref} if org_ref else {"display": chart.clinic.name},
        "priority": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/processpriority", "code": "normal"}]},
        "diagnosis": [
            {"sequence": seq[p], "diagnosisCodeableConcept": {"coding": [{"system": ICD10, "code": code}]}}
            for p, code, _ in doc.diagnoses
        ],
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": coverage_ref} if coverage_ref else {"display": "self-pay"}}],
        "item": items,
    }
    if insurer_ref:
        claim["insurer"] = insurer_ref
    if not claim["diagnosis"]:
        del claim["diagnosis"]
    if not items:
        del claim["item"]
    return claim


def superbill(docs: list[ClaimDocumentation], chart: PatientChart, *, payer: str | None = None,
              member_id: str | None = None, statement_date: dt.date | None = None) -> "Superbill":
    """The printable superbill (for out-of-network patients) of these sessions' claim documentation."""
    from .superbill_pdf import Superbill, SuperbillLine

    pointers: dict[str, str] = {}
    for doc in docs:
        for pointer, code, _ in doc.diagnoses:
            pointers.setdefault(pointer, code)
    practitioners = chart.practitioners
    lines = tuple(
        SuperbillLine(
            service_date=line.service_date, code=line.code, units=line.units, modifiers=line.modifiers,
            diagnosis_pointers=line.diagnosis_pointers, place_of_service=line.place_of_service,
            rendering_npi=practitioners[line.rendering_practitioner].npi if line.rendering_practitioner in practitioners else None,
            rendering_name=(
                f"{practitioners[line.rendering_practitioner].given_names[0]} {practitioners[line.rendering_practitioner].family_name}"
                if line.rendering_practitioner in practitioners else None
            ),
            ndc=line.ndc, ndc_quantity=line.ndc_quantity, ndc_unit=line.ndc_unit, description=line.reason,
            session_id=doc.session_id,
        )
        for doc in docs
        for line in doc.lines
    )
    clinic, patient = chart.clinic, chart.patient
    address = clinic.address
    return Superbill(
        lines=lines,
        diagnoses=tuple((p, c, None) for p, c in sorted(pointers.items())),
        clinic_name=clinic.name, clinic_npi=clinic.npi, clinic_tax_id=clinic.tax_id,
        clinic_address=", ".join([*address.line, address.city or "", address.state or ""]).strip(", ") if address else None,
        clinic_phone=clinic.phone,
        patient_name=f"{' '.join(patient.given_names)} {patient.family_name}", patient_birth_date=patient.birth_date,
        patient_mrn=patient.mrn, payer=payer, member_id=member_id, statement_date=statement_date,
        not_coded=tuple(f"{doc.session_id}: {gap.what} - {gap.reason}" for doc in docs for gap in doc.unsupported),
    )
