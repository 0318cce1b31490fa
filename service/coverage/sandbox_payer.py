"""A sandbox payer: a separate FastAPI app that answers like a payer's FHIR endpoint, using
the SAME rule data as the service (mappings/payers/). Run: `python -m service payer --port P
[--pend-rate 0.3] [--seed N]`; it prints its FHIR base URL on start.

- `POST /fhir/CoverageEligibilityRequest` -> CoverageEligibilityResponse (inforce from the
  contained Coverage's status and period; per requested code: excluded / authorization required).
- `POST /fhir/Claim/$submit` -> PAS response Bundle. Checks the request Bundle's shape (PAS
  rules: collection, identifier, timestamp, Claim first, use preauthorization, item category,
  location, requestType, certificationType, every reference resolvable), finds the payer by the
  insurer's identifiers, the service by the requested codes, and adjudicates the evidence in the
  Bundle against the payer's criteria. A share `pend_rate` of requests (deterministic per seed
  and request identifier) is answered pended (A4) and decided on the next `$inquire`.
- `POST /fhir/Claim/$inquire` -> PAS inquiry response Bundle with the (final) ClaimResponse.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ..payers import PAYERS_DIR, SERVICES, Payer, all_payers

PAS = "http://hl7.org/fhir/us/davinci-pas/StructureDefinition/"
X12_306 = "https://codesystem.x12.org/005010/306"
FHIR_JSON = "application/fhir+json"
SANDBOX_BASE = "http://sandbox-payer.example.org/fhir"
PHQ9_POINTS = {"LA6568-5": 0, "LA6569-3": 1, "LA6570-1": 2, "LA6571-9": 3}
PHQ9_UNSCORED = {"/69722-7"}
FAILED_OUTCOMES = {"no-response", "partial-response"}
REVIEW_DISPLAY = {"A1": "Certified in total", "A3": "Not certified", "A4": "Pending"}


def _fhir(document: dict, status: int = 200) -> JSONResponse:
    return JSONResponse(document, status_code=status, media_type=FHIR_JSON)


def _outcome(messages: list[str], status: int = 400) -> JSONResponse:
    return _fhir({"resourceType": "OperationOutcome", "issue": [
        {"severity": "error", "code": "invalid", "diagnostics": m} for m in messages]}, status)


def _date(value: str | None) -> dt.date | None:
    return dt.date.fromisoformat(value[:10]) if value else None


@dataclass
class Adjudication:
    payer: Payer
    service: str | None
    item_actions: dict[int, tuple[str, int, str]]  # sequence -> (review action, units, reason)
    reasons: list[str]
    period: tuple[dt.date, dt.date] | None


@dataclass
class SandboxState:
    pend_rate: float
    seed: int
    payers: list[Payer]
    decisions: dict[str, dict] = field(default_factory=dict)
    """request identifier -> final response Bundle (pended ones wait for $inquire)."""
    pended: set[str] = field(default_factory=set)
    approvals: dict[str, str] = field(default_factory=dict)
    """member id + first code -> service approved before (renewals continue the same service)."""
    lock: threading.Lock = field(default_factory=threading.Lock)


def shape_errors(bundle: dict) -> list[str]:
    """PAS request Bundle rules (clinical-coding.md §6.3)."""
    errors = []
    if bundle.get("resourceType") != "Bundle":
        return ["body must be a PAS request Bundle"]
    if bundle.get("type") != "collection":
        errors.append("Bundle.type must be collection")
    if not bundle.get("identifier"):
        errors.append("Bundle.identifier is required")
    if not bundle.get("timestamp"):
        errors.append("Bundle.timestamp is required")
    entries = bundle.get("entry") or []
    if not entries or (entries[0].get("resource") or {}).get("resourceType") != "Claim":
        return errors + ["the first entry must be the Claim"]
    present = set()
    for entry in entries:
        if not entry.get("fullUrl") or not entry.get("resource"):
            errors.append("every entry needs fullUrl and resource")
        if any(k in entry for k in ("request", "response", "search")):
            errors.append("entries carry no request/response/search")
        resource = entry.get("resource") or {}
        present.add(f"{resource.get('resourceType')}/{resource.get('id')}")
    claim = entries[0]["resource"]
    if claim.get("use") != "preauthorization":
        errors.append("Claim.use must be preauthorization")
    if claim.get("status") != "active":
        errors.append("Claim.status must be active")
    for name in ("patient", "insurer", "provider"):
        ref = (claim.get(name) or {}).get("reference")
        if ref not in present:
            errors.append(f"Claim.{name} must reference a resource in the Bundle")
    for insurance in claim.get("insurance", []):
        if insurance.get("coverage", {}).get("reference") not in present:
            errors.append("Claim.insurance.coverage must reference a resource in the Bundle")
    for info in claim.get("supportingInfo", []):
        ref = (info.get("valueReference") or {}).get("reference")
        if ref and ref not in present:
            errors.append(f"supportingInfo {ref} is not in the Bundle")
    if not claim.get("item"):
        errors.append("Claim.item is required")
    for item in claim.get("item", []):
        urls = {e.get("url") for e in item.get("extension", [])}
        for needed in ("extension-serviceItemRequestType", "extension-certificationType"):
            if PAS + needed not in urls:
                errors.append(f"item {item.get('sequence')}: {needed} is required")
        if not item.get("category"):
            errors.append(f"item {item.get('sequence')}: category is required")
        if not item.get("locationCodeableConcept"):
            errors.append(f"item {item.get('sequence')}: locationCodeableConcept is required")
    return errors


def _resources(bundle: dict) -> dict[str, dict]:
    return {f"{e['resource']['resourceType']}/{e['resource']['id']}": e["resource"] for e in bundle.get("entry", [])}


def _find_payer(state: SandboxState, insurer: dict | None) -> Payer | None:
    idents = {(i.get("system"), i.get("value")) for i in (insurer or {}).get("identifier", [])}
    for payer in state.payers:
        if idents & {(i["system"], i["value"]) for i in payer.identifiers}:
            return payer
    return None


def _codes(claim: dict) -> list[str]:
    return [i["productOrService"]["coding"][0]["code"] for i in claim.get("item", [])]


def _certification(claim: dict) -> str:
    for item in claim.get("item", []):
        for ext in item.get("extension", []):
            if ext.get("url", "").endswith("extension-certificationType"):
                return ext["valueCodeableConcept"]["coding"][0]["code"]
    return "I"


def _service_for(state: SandboxState, payer: Payer, codes: list[str], member: str, certification: str) -> str | None:
    if certification == "R":
        previous = state.approvals.get(f"{payer.key}|{member}|{codes[0] if codes else ''}")
        if previous:
            return previous
    for name in SERVICES:
        rule = payer.services.get(name)  # type: ignore[call-overload]
        if rule is None or rule.authorize is None:
            continue
        allowed = {i.code for i in rule.authorize.items} | ({"S0013"} if "J0013" in {i.code for i in rule.authorize.items} else set())
        if set(codes) <= allowed:
            return name
    # a service whose codes overlap, so its coverage decision (e.g. not covered) applies
    for name in SERVICES:
        rule = payer.services.get(name)  # type: ignore[call-overload]
        if rule and rule.authorize and set(codes) & {i.code for i in rule.authorize.items}:
            return name
    return None


def _qr_total(qr: dict) -> int | None:
    total, seen = 0, False
    for item in qr.get("item", []):
        if item.get("linkId") in PHQ9_UNSCORED:
            continue
        for answer in item.get("answer", []):
            if "valueCoding" in answer and answer["valueCoding"].get("code") in PHQ9_POINTS:
                total += PHQ9_POINTS[answer["valueCoding"]["code"]]
                seen = True
            elif "valueInteger" in answer:
                total += int(answer["valueInteger"])
                seen = True
    return total if seen else None


def _instrument(qr: dict) -> str:
    url = qr.get("questionnaire", "")
    for name, key in (("phq-9", "phq9"), ("madrs", "madrs"), ("cssrs", "cssrs_screener")):
        if name in url:
            return key
    return "other"


def adjudicate(state: SandboxState, bundle: dict) -> Adjudication | list[str]:
    resources = _resources(bundle)
    claim = bundle["entry"][0]["resource"]
    payer = _find_payer(state, resources.get(claim["insurer"]["reference"]))
    if payer is None:
        return ["the insurer in the Bundle is not a payer of this sandbox (no matching identifier)"]
    coverage = resources.get(claim["insurance"][0]["coverage"]["reference"], {})
    member = next((i.get("value") for i in coverage.get("identifier", []) if i.get("type")), "") or coverage.get("subscriberId", "")
    codes = _codes(claim)
    service = _service_for(state, payer, codes, member, _certification(claim))
    items = claim.get("item", [])
    if service is None:
        reason = f"codes {', '.join(codes)} are not a service {payer.name} authorizes"
        return Adjudication(payer, None, {i["sequence"]: ("A3", 0, reason) for i in items}, [reason], None)
    rule = payer.service(service)
    if not rule.covered:
        reason = rule.not_covered_reason or f"{service} is not a covered service"
        return Adjudication(payer, service, {i["sequence"]: ("A3", 0, reason) for i in items}, [reason], None)
    created = _date(claim.get("created")) or dt.date.today()
    reasons = _criteria_failures(rule.criteria, claim, resources, created, payer)
    start = _date(items[0].get("servicedPeriod", {}).get("start")) or created
    auth = rule.authorize
    period = (start, start + dt.timedelta(days=(auth.period_days if auth else 30) - 1))
    actions: dict[int, tuple[str, int, str]] = {}
    allowed = {i.code: i for i in auth.items} if auth else {}
    if "J0013" in allowed:
        allowed["S0013"] = allowed["J0013"]
    for item in items:
        code = item["productOrService"]["coding"][0]["code"]
        requested = int(item.get("quantity", {}).get("value", 1))
        if reasons:
            actions[item["sequence"]] = ("A3", 0, "; ".join(reasons))
        elif code not in allowed or auth is None:
            actions[item["sequence"]] = ("A3", 0, f"{code} is not authorized for {service}")
        else:
            mods = {m["coding"][0]["code"] for m in item.get("modifier", [])}
            missing = [m for m in auth.modifiers if m not in mods]
            if missing:
                actions[item["sequence"]] = ("A3", 0, f"{code} needs modifier(s) {', '.join(missing)}")
            else:
                units = min(requested, auth.sessions * allowed[code].units_per_session)
                actions[item["sequence"]] = ("A1", units, f"certified {units} unit(s)")
    if any(a[0] == "A1" for a in actions.values()):
        state.approvals[f"{payer.key}|{member}|{codes[0]}"] = service
    return Adjudication(payer, service, actions, reasons, period)


def _criteria_failures(criteria: Any, claim: dict, resources: dict[str, dict], created: dt.date, payer: Payer) -> list[str]:
    evidence = [resources[i["valueReference"]["reference"]] for i in claim.get("supportingInfo", [])
                if i.get("valueReference", {}).get("reference") in resources]
    messages = " ".join(i.get("valueString", "") for i in claim.get("supportingInfo", []))
    failures = []
    if criteria.diagnosis:
        dx = {d["diagnosisCodeableConcept"]["coding"][0]["code"] for d in claim.get("diagnosis", [])}
        if not dx & set(criteria.diagnosis.allowed_icd10) or dx & {"F32.3", "F33.3", "F32.9", "F32.A"}:
            failures.append(f"diagnosis {', '.join(sorted(dx)) or 'missing'} not among {', '.join(criteria.diagnosis.allowed_icd10)}")
    if criteria.treatment_resistance:
        failed = 0
        for resource in evidence:
            if resource.get("resourceType") != "MedicationRequest":
                continue
            outcome = (resource.get("statusReason", {}).get("coding") or [{}])[0].get("code")
            bounds = ((resource.get("dosageInstruction") or [{}])[0].get("timing", {}).get("repeat", {}).get("boundsPeriod", {}))
            start, end = _date(bounds.get("start")), _date(bounds.get("end"))
            weeks = ((end - start).days / 7) if start and end else 0
            if outcome in FAILED_OUTCOMES and weeks >= criteria.treatment_resistance.min_weeks:
                failed += 1
        if failed < criteria.treatment_resistance.min_failed_trials:
            failures.append(f"{failed} adequate failed antidepressant trial(s) documented; "
                            f"{criteria.treatment_resistance.min_failed_trials} required")
    qrs = [r for r in evidence if r.get("resourceType") == "QuestionnaireResponse"]

    def recent(qr: dict, days: int) -> bool:
        authored = _date(qr.get("authored"))
        return authored is not None and created - dt.timedelta(days=days) <= authored <= created

    if criteria.baseline_severity:
        spec = criteria.baseline_severity
        ok = any(_instrument(q) == t.instrument and recent(q, spec.within_days) and (_qr_total(q) or 0) >= t.min_total
                 for q in qrs for t in spec.any_of)
        if not ok:
            wanted = " or ".join(f"{t.instrument.upper()} >= {t.min_total}" for t in spec.any_of)
            failures.append(f"no {wanted} within {spec.within_days} days")
    if criteria.suicide_risk_screen:
        if not any(_instrument(q) == "cssrs_screener" and recent(q, criteria.suicide_risk_screen.within_days) for q in qrs):
            failures.append(f"no C-SSRS within {criteria.suicide_risk_screen.within_days} days")
    if criteria.rems:
        if criteria.rems.patient_enrolled and "Patient enrolled in REMS" not in messages:
            failures.append("REMS patient enrollment not attested")
        if criteria.rems.site_certified and "REMS-certified site" not in messages:
            failures.append("REMS-certified site not attested")
    if criteria.prior_response:
        phq = sorted((q for q in qrs if _instrument(q) == "phq9"), key=lambda q: q.get("authored", ""))
        totals = [t for q in phq if (t := _qr_total(q)) is not None]
        if len(totals) < 2 or totals[0] <= 0 or totals[-1] > totals[0] / 2:
            failures.append("response (>= 50 % PHQ-9 reduction) or remission not documented")
    return failures


def _claim_response(bundle: dict, adj: Adjudication, *, final: bool, now: dt.datetime, ref: str) -> dict:
    claim = bundle["entry"][0]["resource"]
    items = []
    notes = []
    for item in claim.get("item", []):
        seq = item["sequence"]
        action, units, reason = adj.item_actions[seq] if final else ("A4", 0, "pended for clinical review")
        review = {"url": PAS + "extension-reviewAction", "extension": [
            {"url": PAS + "extension-reviewActionCode",
             "valueCodeableConcept": {"coding": [{"system": X12_306, "code": action, "display": REVIEW_DISPLAY[action]}]}}]}
        if action == "A1":
            review["extension"].insert(0, {"url": "number", "valueString": f"{ref}-{seq}"})
        extensions: list[dict] = []
        if action == "A1" and adj.period:
            extensions = [
                {"url": PAS + "extension-itemPreAuthIssueDate", "valueDate": now.date().isoformat()},
                {"url": PAS + "extension-itemPreAuthPeriod",
                 "valuePeriod": {"start": adj.period[0].isoformat(), "end": adj.period[1].isoformat()}},
                {"url": PAS + "extension-itemAuthorizedDetail", "extension": [
                    {"url": "productOrServiceCode", "valueCodeableConcept": item["productOrService"]},
                    {"url": "quantity", "valueQuantity": {"value": units}}]},
            ]
        note_number = len(notes) + 1
        notes.append({"number": note_number, "type": "display", "text": reason})
        entry = {"itemSequence": seq, "noteNumber": [note_number], "adjudication": [{
            "extension": [review],
            "category": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/adjudication", "code": "submitted"}]}}]}
        if extensions:
            entry = {"extension": extensions, **entry}
        items.append(entry)
    response: dict[str, Any] = {
        "resourceType": "ClaimResponse",
        "id": str(uuid.UUID(hashlib.sha256(f"{ref}|{final}|{now.isoformat()}".encode()).hexdigest()[:32])),
        "meta": {"profile": [PAS + "profile-claimresponse"]},
        "identifier": claim.get("identifier", [])[:1],
        "status": "active",
        "type": claim["type"],
        "use": "preauthorization",
        "patient": claim["patient"],
        "created": now.isoformat(),
        "insurer": claim["insurer"],
        "requestor": claim["provider"],
        "request": {"reference": f"Claim/{claim['id']}"},
        "outcome": "complete",
        "disposition": ("; ".join(adj.reasons) if adj.reasons and final else
                        "pended for clinical review" if not final else "certified"),
        "item": items,
        "processNote": notes,
    }
    if final and adj.period and any(a[0] == "A1" for a in adj.item_actions.values()):
        response["preAuthRef"] = ref
        response["preAuthPeriod"] = {"start": adj.period[0].isoformat(), "end": adj.period[1].isoformat()}
    return response


def _response_bundle(request: dict, claim_response: dict, now: dt.datetime, *, inquiry: bool = False) -> dict:
    resources = _resources(request)
    claim = request["entry"][0]["resource"]
    others = [resources[claim[k]["reference"]] for k in ("patient", "insurer", "provider") if claim[k]["reference"] in resources]
    profile = "profile-pas-inquiry-response-bundle" if inquiry else "profile-pas-response-bundle"
    entries = [claim_response, *others]
    return {
        "resourceType": "Bundle",
        "id": str(uuid.UUID(hashlib.sha256(f"{claim_response['id']}|{inquiry}".encode()).hexdigest()[:32])),
        "meta": {"profile": [PAS + profile]},
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{claim_response['id']}"},
        "type": "collection",
        "timestamp": now.isoformat(),
        "entry": [{"fullUrl": f"{SANDBOX_BASE}/{r['resourceType']}/{r['id']}" if r is claim_response else
                   f"http://ketamine-interop.example.org/fhir/{r['resourceType']}/{r['id']}", "resource": r} for r in entries],
    }


def create_payer_app(pend_rate: float = 0.0, seed: int = 0, payers_dir: Path = PAYERS_DIR) -> FastAPI:
    state = SandboxState(pend_rate=pend_rate, seed=seed, payers=all_payers(payers_dir))
    app = FastAPI(title="Sandbox payer (PAS 2.2.1)", version="0.1.0")
    app.state.sandbox = state

    def now() -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)

    @app.get("/fhir/metadata")
    def metadata() -> JSONResponse:
        return _fhir({"resourceType": "CapabilityStatement", "status": "active", "kind": "instance", "fhirVersion": "4.0.1",
                      "date": now().date().isoformat(), "format": ["json"],
                      "rest": [{"mode": "server", "resource": [
                          {"type": "Claim", "operation": [
                              {"name": "submit", "definition": "http://hl7.org/fhir/us/davinci-pas/OperationDefinition/Claim-submit"},
                              {"name": "inquire", "definition": "http://hl7.org/fhir/us/davinci-pas/OperationDefinition/Claim-inquiry"}]},
                          {"type": "CoverageEligibilityRequest", "interaction": [{"code": "create"}]}]}]})

    @app.post("/fhir/Claim/$submit")
    async def submit(request: Request) -> JSONResponse:
        bundle = _unwrap(await request.json())
        errors = shape_errors(bundle)
        if errors:
            return _outcome(errors)
        result = adjudicate(state, bundle)
        if isinstance(result, list):
            return _outcome(result, 422)
        identifier = bundle["entry"][0]["resource"]["identifier"][0]["value"]
        ref = "PA-" + hashlib.sha256(f"{seed}|{identifier}".encode()).hexdigest()[:10].upper()
        pended = random.Random(f"{seed}|{identifier}").random() < state.pend_rate
        moment = now()
        final = _response_bundle(bundle, _claim_response(bundle, result, final=True, now=moment, ref=ref), moment)
        with state.lock:
            state.decisions[identifier] = {"request": bundle, "result": result, "ref": ref, "final": final}
            if pended:
                state.pended.add(identifier)
        if pended:
            return _fhir(_response_bundle(bundle, _claim_response(bundle, result, final=False, now=moment, ref=ref), moment))
        return _fhir(final)

    @app.post("/fhir/Claim/$inquire")
    async def inquire(request: Request) -> JSONResponse:
        bundle = _unwrap(await request.json())
        entries = bundle.get("entry") or []
        if bundle.get("resourceType") != "Bundle" or not entries or entries[0].get("resource", {}).get("resourceType") != "Claim":
            return _outcome(["body must be a PAS inquiry Bundle with the Claim first"])
        identifier = (entries[0]["resource"].get("identifier") or [{}])[0].get("value")
        with state.lock:
            known = state.decisions.get(identifier or "")
            if known is not None:
                state.pended.discard(identifier)  # decided now
        if known is None:
            return _outcome([f"no prior authorization with identifier {identifier!r}"], 404)
        moment = now()
        response = _claim_response(known["request"], known["result"], final=True, now=moment, ref=known["ref"])
        return _fhir(_response_bundle(known["request"], response, moment, inquiry=True))

    @app.post("/fhir/CoverageEligibilityRequest")
    async def eligibility(request: Request) -> JSONResponse:
        body = await request.json()
        if body.get("resourceType") != "CoverageEligibilityRequest":
            return _outcome(["body must be a CoverageEligibilityRequest"])
        contained = {f"#{r.get('id')}": r for r in body.get("contained", [])}
        payer = _find_payer(state, contained.get(body.get("insurer", {}).get("reference", "")))
        coverage = contained.get(((body.get("insurance") or [{}])[0].get("coverage") or {}).get("reference", ""), {})
        if payer is None:
            return _outcome(["unknown insurer"], 422)
        served = _date(body.get("servicedDate")) or now().date()
        start, end = _date(coverage.get("period", {}).get("start")), _date(coverage.get("period", {}).get("end"))
        inforce = coverage.get("status") == "active" and (start is None or start <= served) and (end is None or served <= end)
        items = []
        for item in body.get("item", []):
            code = item["productOrService"]["coding"][0]["code"]
            service = _service_for(state, payer, [code], "", "I")
            rule = payer.service(service) if service else None
            entry: dict[str, Any] = {"productOrService": item["productOrService"], "excluded": not (rule and rule.covered)}
            if rule and rule.covered:
                entry["authorizationRequired"] = rule.prior_auth_required
                entry["description"] = f"{service}: prior authorization {'required' if rule.prior_auth_required else 'not required'}"
                if rule.authorize:
                    entry["benefit"] = [{"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/benefit-type", "code": "visit"}]},
                                         "allowedUnsignedInt": rule.authorize.sessions}]
            else:
                entry["description"] = (rule.not_covered_reason if rule else None) or f"{code}: not a covered service"
            items.append(entry)
        response = {
            "resourceType": "CoverageEligibilityResponse",
            "id": str(uuid.UUID(hashlib.sha256(repr(sorted(body.items(), key=str)).encode()).hexdigest()[:32])),
            "contained": [r for r in body.get("contained", []) if r.get("resourceType") in ("Patient", "Coverage", "Organization")],
            "status": "active",
            "purpose": body.get("purpose", ["validation"]),
            "patient": body["patient"],
            "servicedDate": served.isoformat(),
            "created": now().isoformat(),
            "request": {"identifier": (body.get("identifier") or [{}])[0]},
            "outcome": "complete",
            "disposition": "coverage in force" if inforce else "coverage not in force on the service date",
            "insurer": body["insurer"],
            "insurance": [{"coverage": body["insurance"][0]["coverage"], "inforce": inforce, **({"item": items} if items else {})}],
        }
        return _fhir(response)

    return app


def _unwrap(document: dict) -> dict:
    """A Bundle posted directly, or a Parameters with parameter[name=resource] (the operation form)."""
    if document.get("resourceType") == "Parameters":
        for parameter in document.get("parameter", []):
            if parameter.get("resource", {}).get("resourceType") == "Bundle":
                return parameter["resource"]
    return document


__all__ = ["adjudicate", "create_payer_app", "shape_errors"]
