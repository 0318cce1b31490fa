"""Da Vinci PAS 2.2.1 messages: the prior-authorization request Bundle, the inquiry Bundle,
the CoverageEligibilityRequest, and interpretation of ClaimResponses.

Request Bundle (clinical-coding.md §6.3; PAS examples Bundle-MedicalServicesAuthorization...):
type collection, identifier, timestamp, first entry the Claim (profile-claim: use
preauthorization, status active, type professional, patient -> PAS Beneficiary, insurer ->
PAS Insurer, provider -> PAS Requestor, insurance focal -> PAS Coverage, ICD-10-CM diagnoses,
items with X12 1365 category, CPT/HCPCS productOrService, POS location, quantity,
servicedPeriod and the serviceItemRequestType + certificationType extensions), supportingInfo
additionalInformation -> US Core QuestionnaireResponses (PHQ-9, MADRS, C-SSRS), US Core
MedicationRequests (prior trials), Conditions; every referenced resource is in the Bundle.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..domain.coverage import CoverageRecord
from ..domain.scoring import Instrument
from ..fhir import MappingContext
from ..fhir.builders.coverage import coverage_resource, insurer_organization, insurer_ref
from ..fhir.ids import CANONICAL_BASE, resource_id
from ..payers import Payer
from .chart import PatientChart
from .claims import CPT, HCPCS, ICD10, POS
from .criteria import Checklist

PAS = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/"
PAS_TEMP = "http://hl7.org/fhir/us/davinci-pas/CodeSystem/PASTempCodes"
X12_98 = "https://codesystem.x12.org/005010/98"
X12_306 = "https://codesystem.x12.org/005010/306"
FULL_URL_BASE = CANONICAL_BASE
REVIEW_ACTIONS = {"A1": "approved", "A2": "approved", "A3": "denied", "A4": "pended", "A6": "approved", "CT": "pended", "NA": "approved"}
"""X12 306 review action codes -> item decision (A1 certified in total, A2 certified partial,
A3 not certified, A4 pended; PAS examples use A1/A3/A4)."""
_REF = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})$")


def full_url(resource: dict) -> str:
    return f"{FULL_URL_BASE}/{resource['resourceType']}/{resource['id']}"


def _strip_meta(resource: dict, *profiles: str) -> dict:
    out = {k: v for k, v in resource.items() if k not in ("meta", "text")}
    if profiles:
        out = {"resourceType": out.pop("resourceType"), "id": out.pop("id"), "meta": {"profile": list(profiles)}, **out}
    elif resource.get("meta", {}).get("profile"):
        out = {"resourceType": out.pop("resourceType"), "id": out.pop("id"), "meta": {"profile": resource["meta"]["profile"]}, **out}
    return out


def _references(value: Any) -> Iterable[str]:
    if isinstance(value, dict):
        ref = value.get("reference")
        if isinstance(ref, str) and _REF.match(ref):
            yield ref
        for item in value.values():
            yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def beneficiary(chart: PatientChart) -> dict:
    ref = chart.fhir_refs[("patients", chart.patient.id)][0]
    patient = _strip_meta(chart.resources[ref], PAS + "profile-beneficiary")
    return patient


def requestor(chart: PatientChart) -> dict:
    ref = chart.fhir_refs[("clinics", chart.clinic.id)][0]
    org = _strip_meta(chart.resources[ref], PAS + "profile-requestor")
    # PAS Organization.type is bound (required) to X12 98 entity identifier codes: 1P = Provider
    org["type"] = [{"coding": [{"system": X12_98, "code": "1P", "display": "Provider"}]}]
    return org


@dataclass
class Evidence:
    """supportingInfo additionalInformation entries: (stored 'Type/id', description)."""

    items: list[tuple[str, str]] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    def add(self, ref: str | None, description: str) -> None:
        if ref and all(ref != r for r, _ in self.items):
            self.items.append((ref, description))


def collect_evidence(chart: PatientChart, checklist: Checklist, *, renewal: bool = False) -> Evidence:
    """Evidence for the request: the PHQ-9/MADRS/C-SSRS QuestionnaireResponses, prior-trial
    MedicationRequests and MDD Conditions the checklist linked to (plus, for a renewal, the
    latest outcome scores)."""
    ev = Evidence()
    by_key = {(c.key): c for c in checklist.criteria}
    for criterion in checklist.criteria:
        for link in criterion.links:
            for ref in link.fhir:
                if ref.split("/")[0] in ("QuestionnaireResponse", "MedicationRequest", "Condition"):
                    ev.add(ref, f"{criterion.title}: {link.kind}/{link.key}")
        if criterion.status.value == "met" and criterion.key != "coverage":
            ev.messages.append(f"{criterion.title}: {criterion.evidence}")
    if renewal:
        for instrument in (Instrument.PHQ9, Instrument.MADRS):
            answers = chart.questionnaires(instrument)
            if len(answers) >= 2:
                first, last = answers[0], answers[-1]
                ev.add(chart.primary_ref(first, "QuestionnaireResponse"), f"{instrument.value.upper()} baseline {first.result().total}")
                ev.add(chart.primary_ref(last, "QuestionnaireResponse"), f"{instrument.value.upper()} latest {last.result().total}")
    del by_key
    return ev


def _document_information(description: str) -> dict:
    return {
        "url": PAS + "extension-documentInformation",
        "extension": [
            # PWK01 report type PY (Physician's Report) and PWK02 EL (electronically only), as in the PAS examples
            {"url": "reportTypeCode", "valueCodeableConcept": {"coding": [{"system": "https://codesystem.x12.org/005010/755", "code": "PY"}]}},
            {"url": "transmissionMethod", "valueCodeableConcept": {"coding": [{"system": "https://codesystem.x12.org/005010/756", "code": "EL"}]}},
            {"url": "description", "valueString": description[:200]},
        ],
    }


@dataclass(frozen=True)
class RequestedItem:
    sequence: int
    code: str
    system: str
    quantity: int
    modifiers: tuple[str, ...]


def requested_items(payer: Payer, service: str, start: dt.date) -> list[RequestedItem]:
    """The items to request: the payer's `authorize` block (J0013 becomes S0013 before 2026)."""
    from ..domain.billing import esketamine_drug_code

    auth = payer.service(service).authorize
    if auth is None:
        return []
    out = []
    for index, item in enumerate(auth.items, start=1):
        code = esketamine_drug_code(start) if item.code in ("J0013", "S0013") else item.code
        out.append(RequestedItem(index, code, CPT if item.system == "cpt" else HCPCS, auth.sessions * item.units_per_session,
                                 tuple(auth.modifiers)))
    return out


def build_request_bundle(
    chart: PatientChart, coverage: CoverageRecord, payer: Payer, service: str, checklist: Checklist, *,
    request_id: str, created: dt.datetime, start: dt.date, renewal: bool = False, place_of_service: str = "11",
    prior_preauth_ref: str | None = None,
) -> dict:
    """The PAS request Bundle (profile-pas-request-bundle) for one service."""
    ctx = MappingContext(clinic=chart.clinic)
    auth = payer.service(service).authorize
    period_days = auth.period_days if auth else 30
    end = start + dt.timedelta(days=period_days - 1)
    patient = beneficiary(chart)
    org = requestor(chart)
    insurer = insurer_organization(payer, pas=True)
    cov = coverage_resource(coverage, ctx, payer, pas=True)
    certification = payer.x12.certification_renewal if renewal else payer.x12.certification_initial
    evidence = collect_evidence(chart, checklist, renewal=renewal)
    diagnoses = [
        d for d in chart.diagnoses
        if d.icd10 in (payer.service(service).criteria.diagnosis.allowed_icd10 if payer.service(service).criteria.diagnosis else [d.icd10])
    ] or chart.diagnoses
    claim_id = resource_id("Claim", ctx.system("prior-auth"), request_id)
    supporting: list[dict] = []
    for ref, description in evidence.items:
        supporting.append({
            "extension": [_document_information(description)],
            "sequence": len(supporting) + 1,
            "category": {"coding": [{"system": PAS_TEMP, "code": "additionalInformation"}]},
            "valueReference": {"reference": ref},
        })
    summary = "; ".join(evidence.messages)
    if renewal and prior_preauth_ref:
        summary = f"Renewal of authorization {prior_preauth_ref}. " + summary
    if summary:
        supporting.append({
            "sequence": len(supporting) + 1,
            "category": {"coding": [{"system": PAS_TEMP, "code": "freeFormMessage"}]},
            "valueString": summary[:1000],
        })
    items = []
    for item in requested_items(payer, service, start):
        entry: dict[str, Any] = {
            "extension": [
                {"url": PAS + "extension-serviceItemRequestType", "valueCodeableConcept": {"coding": [payer.x12.request_type.coding()]}},
                {"url": PAS + "extension-certificationType", "valueCodeableConcept": {"coding": [certification.coding()]}},
            ],
            "sequence": item.sequence,
            "diagnosisSequence": [1] if diagnoses else None,
            "category": {"coding": [payer.x12.category.coding()]},
            "productOrService": {"coding": [{"system": item.system, "code": item.code}]},
            "modifier": [{"coding": [{"system": HCPCS, "code": m}]} for m in item.modifiers] or None,
            "servicedPeriod": {"start": start.isoformat(), "end": end.isoformat()},
            "locationCodeableConcept": {"coding": [{"system": POS, "code": place_of_service}]},
            "quantity": {"value": item.quantity},
        }
        items.append({k: v for k, v in entry.items() if v is not None})
    claim: dict[str, Any] = {
        "resourceType": "Claim",
        "id": claim_id,
        "meta": {"profile": [PAS + "profile-claim"]},
        "identifier": [{"system": f"urn:trnorg:{chart.clinic.npi or chart.clinic.id}", "value": request_id}],
        "status": "active",
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": "professional"}]},
        "use": "preauthorization",
        "patient": {"reference": f"Patient/{patient['id']}"},
        "created": created.isoformat(),
        "insurer": {"reference": f"Organization/{insurer['id']}"},
        "provider": {"reference": f"Organization/{org['id']}"},
        "priority": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/processpriority", "code": "normal"}]},
        "supportingInfo": supporting or None,
        "diagnosis": [
            {"sequence": i, "diagnosisCodeableConcept": {"coding": [{"system": ICD10, "code": d.icd10}]}}
            for i, d in enumerate(diagnoses, start=1)
        ] or None,
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": f"Coverage/{cov['id']}"}}],
        "item": items,
    }
    claim = {k: v for k, v in claim.items() if v is not None}
    entries = [claim, org, insurer, cov, patient]
    _include_referenced(entries, chart, [ref for ref, _ in evidence.items])
    return {
        "resourceType": "Bundle",
        "id": resource_id("Bundle", ctx.system("prior-auth"), request_id),
        "meta": {"profile": [PAS + "profile-pas-request-bundle"]},
        "identifier": {"system": ctx.system("prior-auth-bundles"), "value": request_id},
        "type": "collection",
        "timestamp": created.isoformat(),
        "entry": [{"fullUrl": full_url(r), "resource": r} for r in entries],
    }


def _include_referenced(entries: list[dict], chart: PatientChart, extra_refs: list[str]) -> None:
    """Add the stored resources of `extra_refs` and, transitively, everything any entry
    references (practitioners, organizations...) that the chart holds."""
    present = {f"{r['resourceType']}/{r['id']}" for r in entries}
    queue = list(extra_refs)
    for resource in entries:
        queue.extend(_references(resource))
    while queue:
        ref = queue.pop(0)
        if ref in present or ref not in chart.resources:
            continue
        resource = _strip_meta(chart.resources[ref])
        entries.append(resource)
        present.add(ref)
        queue.extend(_references(resource))


def build_inquiry_bundle(request_bundle: dict, *, inquiry_id: str, created: dt.datetime) -> dict:
    """The PAS inquiry Bundle (profile-pas-inquiry-request-bundle): query-by-example on the
    original Claim's identifier, patient, insurer, provider and items."""
    entries = [e["resource"] for e in request_bundle["entry"]]
    claim = entries[0]
    inquiry_claim = {
        "resourceType": "Claim",
        "id": resource_id("Claim", "inquiry", inquiry_id),
        "meta": {"profile": [PAS + "profile-claim-inquiry"]},
        "identifier": claim["identifier"][:1],
        "status": "active",
        "type": claim["type"],
        "use": "preauthorization",
        "patient": claim["patient"],
        "created": created.isoformat(),
        "insurer": claim["insurer"],
        "provider": claim["provider"],
        "priority": claim["priority"],
        "insurance": claim["insurance"],
        "item": [
            {k: v for k, v in item.items() if k in ("extension", "sequence", "category", "productOrService", "servicedPeriod", "locationCodeableConcept", "quantity")}
            for item in claim["item"]
        ],
    }
    keep = {claim["patient"]["reference"], claim["insurer"]["reference"], claim["provider"]["reference"],
            claim["insurance"][0]["coverage"]["reference"]}
    others = [r for r in entries[1:] if f"{r['resourceType']}/{r['id']}" in keep]
    resources = [inquiry_claim, *others]
    return {
        "resourceType": "Bundle",
        "id": resource_id("Bundle", "inquiry", inquiry_id),
        "meta": {"profile": [PAS + "profile-pas-inquiry-request-bundle"]},
        "identifier": {"system": request_bundle["identifier"]["system"] + "/inquiry", "value": inquiry_id},
        "type": "collection",
        "timestamp": created.isoformat(),
        "entry": [{"fullUrl": full_url(r), "resource": r} for r in resources],
    }


def build_eligibility_request(
    chart: PatientChart, coverage: CoverageRecord, payer: Payer, service: str, *, request_id: str, created: dt.datetime,
    serviced: dt.date,
) -> dict:
    """A CoverageEligibilityRequest (R4 base; no US Core profile exists) with the patient,
    coverage, insurer and provider contained, so a payer can answer from this one resource."""
    ctx = MappingContext(clinic=chart.clinic)
    patient = _strip_meta(beneficiary(chart))
    patient.pop("managingOrganization", None)
    patient["id"] = "patient"
    cov = coverage_resource(coverage, ctx, payer, pas=False)
    cov = {k: v for k, v in cov.items() if k != "meta"}
    cov["id"] = "coverage"
    cov["beneficiary"] = {"reference": "#patient"}
    cov["payor"] = [{"reference": "#insurer", "display": payer.name}]
    insurer = {k: v for k, v in insurer_organization(payer).items() if k != "meta"}
    insurer["id"] = "insurer"
    provider = {k: v for k, v in requestor(chart).items() if k != "meta"}
    provider["id"] = "provider"
    provider["type"] = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/organization-type", "code": "prov", "display": "Healthcare Provider"}]}]
    items = [
        {"productOrService": {"coding": [{"system": i.system, "code": i.code}]}, "diagnosis": [
            {"diagnosisCodeableConcept": {"coding": [{"system": ICD10, "code": d.icd10}]}} for d in chart.diagnoses[:1]
        ] or None}
        for i in requested_items(payer, service, serviced)
    ]
    return {
        "resourceType": "CoverageEligibilityRequest",
        "id": resource_id("CoverageEligibilityRequest", ctx.system("eligibility"), request_id),
        "contained": [patient, cov, insurer, provider],
        "identifier": [{"system": ctx.system("eligibility"), "value": request_id}],
        "status": "active",
        "purpose": ["benefits", "validation"],
        "patient": {"reference": "#patient"},
        "servicedDate": serviced.isoformat(),
        "created": created.isoformat(),
        "provider": {"reference": "#provider"},
        "insurer": {"reference": "#insurer"},
        "insurance": [{"focal": True, "coverage": {"reference": "#coverage"}}],
        "item": [{k: v for k, v in i.items() if v is not None} for i in items] or None,
    } if items else {
        "resourceType": "CoverageEligibilityRequest",
        "id": resource_id("CoverageEligibilityRequest", ctx.system("eligibility"), request_id),
        "contained": [patient, cov, insurer, provider],
        "identifier": [{"system": ctx.system("eligibility"), "value": request_id}],
        "status": "active",
        "purpose": ["validation"],
        "patient": {"reference": "#patient"},
        "servicedDate": serviced.isoformat(),
        "created": created.isoformat(),
        "provider": {"reference": "#provider"},
        "insurer": {"reference": "#insurer"},
        "insurance": [{"focal": True, "coverage": {"reference": "#coverage"}}],
    }


# ------------------------------------------------------------------------- responses


@dataclass(frozen=True)
class ItemDecision:
    sequence: int
    code: str | None
    review_action: str | None
    decision: str  # approved | denied | pended | unknown
    authorized_units: int | None
    period_start: str | None
    period_end: str | None
    number: str | None
    reasons: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence, "code": self.code, "review_action": self.review_action, "decision": self.decision,
            "authorized_units": self.authorized_units, "period": {"start": self.period_start, "end": self.period_end},
            "number": self.number, "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class Decision:
    status: str  # approved | partial | denied | pended | error
    outcome: str | None
    preauth_ref: str | None
    period_start: str | None
    period_end: str | None
    items: tuple[ItemDecision, ...]
    notes: tuple[str, ...]
    errors: tuple[str, ...]
    communication_requests: tuple[str, ...]
    claim_response_id: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status, "outcome": self.outcome, "preauth_ref": self.preauth_ref,
            "period": {"start": self.period_start, "end": self.period_end},
            "items": [i.as_dict() for i in self.items], "notes": list(self.notes), "errors": list(self.errors),
            "communication_requests": list(self.communication_requests), "claim_response_id": self.claim_response_id,
        }


def _ext(extensions: list[dict] | None, suffix: str) -> dict | None:
    return next((e for e in extensions or [] if e.get("url", "").endswith(suffix)), None)


def find_claim_response(document: dict) -> dict | None:
    """The ClaimResponse in a response Bundle, an inquiry Parameters, or the resource itself."""
    if document.get("resourceType") == "ClaimResponse":
        return document
    if document.get("resourceType") == "Parameters":
        for parameter in document.get("parameter", []):
            found = find_claim_response(parameter.get("resource") or {})
            if found:
                return found
        return None
    for entry in document.get("entry", []) if document.get("resourceType") == "Bundle" else []:
        resource = entry.get("resource") or {}
        if resource.get("resourceType") == "ClaimResponse":
            return resource
        if resource.get("resourceType") == "Bundle":
            found = find_claim_response(resource)
            if found:
                return found
    return None


def interpret(document: dict, requested: dict[int, str] | None = None) -> Decision:
    """The decision a PAS response carries: per item the X12 306 review action (A1 approved,
    A3 denied, A4 pended), units and period authorized; overall approved / partial / denied /
    pended / error. `requested` maps item sequence -> requested code."""
    requested = requested or {}
    if document.get("resourceType") == "OperationOutcome":
        errors = tuple(i.get("diagnostics") or i.get("details", {}).get("text", "error") for i in document.get("issue", []))
        return Decision("error", None, None, None, None, (), (), errors, (), None)
    response = find_claim_response(document)
    if response is None:
        return Decision("error", None, None, None, None, (), (), ("no ClaimResponse in the payer's answer",), (), None)
    items = []
    for item in response.get("item", []):
        seq = int(item.get("itemSequence", 0))
        review = None
        number = None
        reasons: list[str] = []
        for adjudication in item.get("adjudication", []):
            action = _ext(adjudication.get("extension"), "extension-reviewAction")
            if action:
                code_ext = _ext(action.get("extension"), "extension-reviewActionCode")
                if code_ext:
                    review = code_ext["valueCodeableConcept"]["coding"][0]["code"]
                number_ext = _ext(action.get("extension"), "number")
                number = number_ext.get("valueString") if number_ext else number
                reason_ext = _ext(action.get("extension"), "reasonCode")
                if reason_ext:
                    reasons.extend(c.get("display") or c.get("code") for c in reason_ext["valueCodeableConcept"].get("coding", []))
            if adjudication.get("reason"):
                reasons.append(adjudication["reason"].get("text") or adjudication["reason"]["coding"][0].get("code"))
        period = (_ext(item.get("extension"), "extension-itemPreAuthPeriod") or {}).get("valuePeriod", {})
        detail = _ext(item.get("extension"), "extension-itemAuthorizedDetail")
        units = None
        if detail:
            quantity = _ext(detail.get("extension"), "quantity")
            if quantity:
                units = int(quantity["valueQuantity"]["value"])
        for note in item.get("noteNumber", []):
            for process_note in response.get("processNote", []):
                if process_note.get("number") == note:
                    reasons.append(process_note.get("text", ""))
        decision = REVIEW_ACTIONS.get(review or "", "unknown")
        items.append(ItemDecision(seq, requested.get(seq), review, decision, units if decision == "approved" else (0 if decision == "denied" else None),
                                  period.get("start"), period.get("end"), number, tuple(r for r in reasons if r)))
    decisions = {i.decision for i in items}
    if response.get("outcome") == "error" or response.get("error"):
        status = "error"
    elif "pended" in decisions or "unknown" in decisions or not items:
        status = "pended"
    elif decisions == {"approved"}:
        status = "approved"
    elif decisions == {"denied"}:
        status = "denied"
    else:
        status = "partial"
    period = response.get("preAuthPeriod", {})
    notes = tuple(n.get("text", "") for n in response.get("processNote", []) if not n.get("number") or not any(
        n.get("number") in i.get("noteNumber", []) for i in response.get("item", [])))
    if response.get("disposition"):
        notes = (response["disposition"], *notes)
    errors = tuple(
        (e.get("code", {}).get("text") or e.get("code", {}).get("coding", [{}])[0].get("code", "error")) for e in response.get("error", [])
    )
    comms = tuple(c.get("reference", "") for c in response.get("communicationRequest", []))
    return Decision(status, response.get("outcome"), response.get("preAuthRef"), period.get("start"), period.get("end"),
                    tuple(items), notes, errors, comms, response.get("id"))


__all__ = [
    "Decision", "ItemDecision", "build_eligibility_request", "build_inquiry_bundle", "build_request_bundle",
    "find_claim_response", "insurer_ref", "interpret", "requested_items",
]
