"""Coverage use cases for billing staff: pre-check, eligibility, prior authorization (build,
submit, inquire, renew), worklist, authorized-unit usage, claim documentation, REMS status.

Each function owns its unit(s) of work. Payer HTTP calls happen outside any transaction
(a slow payer never holds a database lock); every exchange is stored afterwards.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Callable, Mapping

from ..coverage import claims as claims_mod
from ..coverage import pas, rems, units
from ..coverage.chart import PatientChart
from ..coverage.client import PayerClient, PayerError
from ..coverage.criteria import SERVICE_AGENT, Checklist, evaluate
from ..domain.administration import Agent
from ..domain.coverage import CoverageRecord
from ..domain.organization import Clinic, Location, Practitioner
from ..domain.outcomes import DEFAULT_RULES, OutcomeRules
from ..domain.patient import Patient
from ..fhir import MappingContext
from ..fhir.builders.coverage import insurer_ref
from ..payers import SERVICES, Payer, UnknownPayer, endpoint_url, load_payer
from ..store import UnitOfWork
from ..store.coverage_repository import StoredAuthRequest
from .errors import FieldError, InvalidRecord, NotFound

UowFactory = Callable[[], UnitOfWork]
ClientFactory = Callable[[str], PayerClient]
OPEN_STATUSES = ("draft", "submitted", "pended", "error")


def _today(uow: UnitOfWork) -> dt.date:
    return uow.now.date()


def _payer(key: str) -> Payer:
    try:
        return load_payer(key)
    except UnknownPayer as error:
        raise NotFound(str(error)) from None


def _service(service: str) -> str:
    if service not in SERVICES:
        raise InvalidRecord(f"unknown service {service!r}", [FieldError("service", f"one of {', '.join(SERVICES)}")])
    return service


def load_chart(uow: UnitOfWork, clinic_id: str, patient_id: str) -> PatientChart:
    """The patient's records (typed) with their FHIR resources, plus the clinic's
    practitioners and locations. Call inside an open unit of work."""
    clinic_row = uow.records.get("clinics", clinic_id, clinic_id)
    if clinic_row is None:
        raise NotFound(f"no clinic {clinic_id!r}")
    patient_row = uow.records.get("patients", clinic_id, patient_id)
    if patient_row is None:
        raise NotFound(f"no patient {patient_id!r} in clinic {clinic_id!r}")
    rows = [r for r in uow.records.for_patient(clinic_id, patient_id) if r.kind != "patients"]
    chart = PatientChart.from_data(Clinic.model_validate(clinic_row.data), Patient.model_validate(patient_row.data),
                                   [(r.kind, r.data) for r in rows])
    chart.records["patients"] = [chart.patient]
    sources = [("clinics", clinic_id), ("patients", patient_id), *((r.kind, r.key) for r in rows)]
    for kind in ("practitioners", "locations"):
        for row in uow.records.list(kind, clinic_id=clinic_id, limit=1000):
            sources.append((kind, row.key))
            if kind == "practitioners":
                chart.practitioners[row.key] = Practitioner.model_validate(row.data)
            else:
                chart.locations[row.key] = Location.model_validate(row.data)
    import orjson

    for kind, key in sources:
        refs = []
        for stored in uow.resources.by_source(kind, clinic_id, key):
            ref = f"{stored.resource_type}/{stored.id}"
            refs.append(ref)
            if stored.json is not None and stored.resource_type != "Provenance":
                chart.resources[ref] = orjson.loads(stored.json)
        chart.fhir_refs[(kind, key)] = refs
    return chart


def _coverage(chart: PatientChart, coverage_id: str | None) -> CoverageRecord:
    if coverage_id:
        found = chart.coverage(coverage_id)
        if found is None:
            raise NotFound(f"no coverage {coverage_id!r} for patient {chart.patient.id!r}")
        return found
    active = [c for c in chart.coverages if c.status.value == "active"]
    if not active:
        raise NotFound(f"patient {chart.patient.id!r} has no active coverage record")
    return sorted(active, key=lambda c: c.period_start)[-1]


# --------------------------------------------------------------------------- pre-check


def precheck(
    uow: UnitOfWork, clinic_id: str, patient_id: str, service: str, coverage_id: str | None = None,
    as_of: dt.date | None = None, outcome_rules: OutcomeRules = DEFAULT_RULES,
) -> dict[str, Any]:
    _service(service)
    with uow:
        chart = load_chart(uow, clinic_id, patient_id)
        coverage = _coverage(chart, coverage_id)
        payer = _payer(coverage.payer)
        checklist = evaluate(chart, payer, service, coverage, as_of or _today(uow), outcome_rules)
    return {"clinic_id": clinic_id, "patient_id": patient_id, "payer_name": payer.name, **checklist.as_dict()}


# --------------------------------------------------------------------------- eligibility


def check_eligibility(
    uow_factory: UowFactory, client_factory: ClientFactory, clinic_id: str, patient_id: str, service: str,
    coverage_id: str | None = None, endpoints: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    _service(service)
    with uow_factory() as uow:
        chart = load_chart(uow, clinic_id, patient_id)
        coverage = _coverage(chart, coverage_id)
        payer = _payer(coverage.payer)
        request = pas.build_eligibility_request(chart, coverage, payer, service, request_id=str(uuid.uuid4()),
                                                created=uow.now, serviced=_today(uow))
    base = endpoint_url(payer, endpoints)
    client = client_factory(base)
    try:
        status, response = client.eligibility(request)
        error = None
    except PayerError as exc:
        status, response, error = exc.status, exc.body, str(exc)
    summary = eligibility_summary(response) if response and response.get("resourceType") == "CoverageEligibilityResponse" else None
    with uow_factory() as uow:
        exchange = uow.coverage.log_exchange(
            clinic_id=clinic_id, patient_key=patient_id, operation="eligibility", url=f"{base}/CoverageEligibilityRequest",
            request=request, response=response, http_status=status, outcome=(summary or {}).get("status") or "error", error=error,
        )
        uow.commit()
    return {"exchange": exchange.seq, "payer": payer.key, "coverage_id": coverage.id, "service": service, "error": error,
            "summary": summary, "request": request, "response": response}


def eligibility_summary(response: dict) -> dict[str, Any]:
    insurance = (response.get("insurance") or [{}])[0]
    benefits = []
    for item in insurance.get("item", []):
        coding = (item.get("productOrService", {}).get("coding") or [{}])[0]
        benefits.append({
            "code": coding.get("code"), "excluded": item.get("excluded", False),
            "authorization_required": item.get("authorizationRequired"), "description": item.get("description"),
            "benefit": [{"type": (b.get("type", {}).get("coding") or [{}])[0].get("code"),
                         "allowed": b.get("allowedUnsignedInt", b.get("allowedString")),
                         "used": b.get("usedUnsignedInt")} for b in item.get("benefit", [])],
        })
    return {
        "status": "active" if insurance.get("inforce") else "inactive",
        "outcome": response.get("outcome"), "disposition": response.get("disposition"),
        "inforce": insurance.get("inforce"), "benefits": benefits,
    }


# --------------------------------------------------------------------------- prior authorization


def create_prior_auth(
    uow: UnitOfWork, clinic_id: str, patient_id: str, service: str, coverage_id: str | None = None,
    start: dt.date | None = None, *, renewal_of: str | None = None, outcome_rules: OutcomeRules = DEFAULT_RULES,
) -> dict[str, Any]:
    """Build and store a PAS request (status draft). `renewal_of` makes it a re-authorization
    (X12 1322 certification type R) carrying the latest outcome scores as evidence."""
    _service(service)
    with uow:
        chart = load_chart(uow, clinic_id, patient_id)
        prior = None
        if renewal_of:
            prior = uow.coverage.get_request(renewal_of)
            if prior is None or prior.clinic_id != clinic_id or prior.patient_key != patient_id:
                raise NotFound(f"no prior-authorization request {renewal_of!r} for this patient")
            coverage_id = coverage_id or prior.coverage_key
            service = prior.service
        coverage = _coverage(chart, coverage_id)
        payer = _payer(coverage.payer)
        today = _today(uow)
        if start is None:
            start = (prior.period_end + dt.timedelta(days=1)) if prior and prior.period_end and prior.period_end >= today else today
        checklist = evaluate(chart, payer, service, coverage, today, outcome_rules)
        request_id = str(uuid.uuid4())
        location = next(iter(chart.locations.values()), None)
        bundle = pas.build_request_bundle(
            chart, coverage, payer, service, checklist, request_id=request_id, created=uow.now, start=start,
            renewal=renewal_of is not None, place_of_service=location.place_of_service if location else "11",
            prior_preauth_ref=prior.preauth_ref if prior else None,
        )
        stored = uow.coverage.add_request(
            id=request_id, clinic_id=clinic_id, patient_key=patient_id, coverage_key=coverage.id, payer_key=payer.key,
            service=service, certification_type="R" if renewal_of else "I", bundle_identifier=request_id, bundle=bundle,
            replaces_id=renewal_of,
        )
        uow.commit()
    return request_view(stored, checklist=checklist)


def request_view(stored: StoredAuthRequest, checklist: Checklist | None = None) -> dict[str, Any]:
    claim = stored.bundle["entry"][0]["resource"]
    out: dict[str, Any] = {
        "id": stored.id, "clinic_id": stored.clinic_id, "patient_id": stored.patient_key, "coverage_id": stored.coverage_key,
        "payer": stored.payer_key, "service": stored.service, "certification_type": stored.certification_type,
        "status": stored.status, "replaces": stored.replaces_id, "preauth_ref": stored.preauth_ref,
        "period": {"start": stored.period_start.isoformat() if stored.period_start else None,
                   "end": stored.period_end.isoformat() if stored.period_end else None},
        "requested_items": [
            {"sequence": i["sequence"], "code": i["productOrService"]["coding"][0]["code"], "quantity": i["quantity"]["value"],
             "period": i.get("servicedPeriod")} for i in claim.get("item", [])
        ],
        "decision": stored.decision,
        "created_at": stored.created_at.isoformat(), "updated_at": stored.updated_at.isoformat(),
        "links": {
            "self": f"/api/v1/coverage/prior-auth/{stored.id}",
            "bundle": f"/api/v1/coverage/prior-auth/{stored.id}/bundle",
            "submit": f"/api/v1/coverage/prior-auth/{stored.id}/submit",
            "inquire": f"/api/v1/coverage/prior-auth/{stored.id}/inquire",
            "exchanges": f"/api/v1/coverage/prior-auth/{stored.id}/exchanges",
        },
    }
    if checklist is not None:
        out["precheck"] = checklist.as_dict()
    return out


def _get(uow: UnitOfWork, request_id: str) -> StoredAuthRequest:
    stored = uow.coverage.get_request(request_id)
    if stored is None:
        raise NotFound(f"no prior-authorization request {request_id!r}")
    return stored


def get_prior_auth(uow: UnitOfWork, request_id: str) -> dict[str, Any]:
    with uow:
        return request_view(_get(uow, request_id))


def prior_auth_bundle(uow: UnitOfWork, request_id: str) -> dict[str, Any]:
    with uow:
        return _get(uow, request_id).bundle


def prior_auth_exchanges(uow: UnitOfWork, request_id: str) -> list[dict[str, Any]]:
    with uow:
        _get(uow, request_id)
        return [
            {"seq": e.seq, "operation": e.operation, "url": e.url, "http_status": e.http_status, "outcome": e.outcome,
             "error": e.error, "created_at": e.created_at.isoformat(), "request": e.request, "response": e.response}
            for e in uow.coverage.exchanges(request_id=request_id)
        ]


def _requested_codes(bundle: dict) -> dict[int, str]:
    claim = bundle["entry"][0]["resource"]
    return {i["sequence"]: i["productOrService"]["coding"][0]["code"] for i in claim.get("item", [])}


def _exchange(
    uow_factory: UowFactory, client_factory: ClientFactory, request_id: str, operation: str,
    endpoints: Mapping[str, str] | None,
) -> dict[str, Any]:
    with uow_factory() as uow:
        stored = _get(uow, request_id)
        now = uow.now
    payer = _payer(stored.payer_key)
    base = endpoint_url(payer, endpoints)
    client = client_factory(base)
    if operation == "submit":
        message, url = stored.bundle, f"{base}/Claim/$submit"
    else:
        message = pas.build_inquiry_bundle(stored.bundle, inquiry_id=str(uuid.uuid4()), created=now)
        url = f"{base}/Claim/$inquire"
    try:
        status, response = client.submit(message) if operation == "submit" else client.inquire(message)
        error = None
    except PayerError as exc:
        status, response, error = exc.status, exc.body, str(exc)
    decision = pas.interpret(response, _requested_codes(stored.bundle)) if response else None
    with uow_factory() as uow:
        new_status = decision.status if decision and not error else ("error" if stored.status in ("draft", "error") else stored.status)
        start = end = None
        if decision and decision.period_start:
            start = dt.date.fromisoformat(decision.period_start[:10])
        if decision and decision.period_end:
            end = dt.date.fromisoformat(decision.period_end[:10])
        uow.coverage.log_exchange(
            clinic_id=stored.clinic_id, patient_key=stored.patient_key, operation=operation, url=url, request=message,
            response=response, http_status=status, outcome=new_status, error=error or (", ".join(decision.errors) if decision and decision.errors else None),
            request_id=stored.id,
        )
        updated = uow.coverage.update_request(
            stored.id, status=new_status, decision=decision.as_dict() if decision else None,
            preauth_ref=decision.preauth_ref if decision else None, period_start=start, period_end=end,
        )
        uow.commit()
    view = request_view(updated)
    view["last_exchange"] = {"operation": operation, "http_status": status, "error": error}
    return view


def submit_prior_auth(uow_factory: UowFactory, client_factory: ClientFactory, request_id: str,
                      endpoints: Mapping[str, str] | None = None) -> dict[str, Any]:
    """POST the stored request Bundle to `{payer}/Claim/$submit` and record the decision."""
    return _exchange(uow_factory, client_factory, request_id, "submit", endpoints)


def inquire_prior_auth(uow_factory: UowFactory, client_factory: ClientFactory, request_id: str,
                       endpoints: Mapping[str, str] | None = None) -> dict[str, Any]:
    """POST a PAS inquiry Bundle to `{payer}/Claim/$inquire` (pended requests) and record it."""
    return _exchange(uow_factory, client_factory, request_id, "inquire", endpoints)


# --------------------------------------------------------------------------- usage, worklist


def _docs(chart: PatientChart, coverage: CoverageRecord | None) -> dict[str, claims_mod.ClaimDocumentation]:
    return {s.id: claims_mod.document_session(chart, s, coverage) for s in chart.sessions}


def _usage(chart: PatientChart, stored: StoredAuthRequest, today: dt.date) -> units.UnitUsage | None:
    if stored.status not in ("approved", "partial") or not stored.decision or stored.period_start is None:
        return None
    payer = _payer(stored.payer_key)
    auth = payer.service(stored.service).authorize
    rule_agents = payer.service(stored.service).agents or ([SERVICE_AGENT[stored.service].value] if stored.service in SERVICE_AGENT else ["ketamine", "esketamine"])
    items = [{"code": i["code"], "units": i["authorized_units"] or 0, "decision": i["decision"]}
             for i in stored.decision["items"] if i["decision"] == "approved"]
    if not items:
        return None
    per_session = {i.code: i.units_per_session for i in auth.items} if auth else {}
    sessions_authorized = max((i["units"] // per_session.get(i["code"], 1) for i in items), default=0)
    if auth:
        sessions_authorized = min(sessions_authorized, auth.sessions) if sessions_authorized else auth.sessions
    coverage = chart.coverage(stored.coverage_key)
    return units.usage(
        request_id=stored.id, preauth_ref=stored.preauth_ref, period_start=stored.period_start,
        period_end=stored.period_end or stored.period_start, sessions_authorized=sessions_authorized, authorized_items=items,
        sessions=chart.sessions, docs=_docs(chart, coverage), today=today, agents=set(rule_agents),
    )


def authorization_usage(uow: UnitOfWork, clinic_id: str, patient_id: str, today: dt.date | None = None) -> dict[str, Any]:
    """Per approved authorization: sessions and units used/left, and renewal warnings."""
    with uow:
        chart = load_chart(uow, clinic_id, patient_id)
        day = today or _today(uow)
        out = []
        for stored in uow.coverage.list_requests(clinic_id, patient_id):
            use = _usage(chart, stored, day)
            if use is not None:
                out.append({**use.as_dict(), "service": stored.service, "payer": stored.payer_key,
                            "renew": f"/api/v1/coverage/prior-auth/{stored.id}/renew"})
    return {"clinic_id": clinic_id, "patient_id": patient_id, "as_of": day.isoformat(), "authorizations": out}


def worklist(uow: UnitOfWork, clinic_id: str, status: str | None = None, patient_id: str | None = None,
             today: dt.date | None = None) -> dict[str, Any]:
    """Billing worklist: each request with its worklist state (needs-auth = draft/error,
    pended, expiring = approved but warned, denied, approved, partial)."""
    with uow:
        day = today or _today(uow)
        rows = uow.coverage.list_requests(clinic_id, patient_id)
        charts: dict[str, PatientChart] = {}
        items = []
        for stored in rows:
            state = {"draft": "needs-auth", "error": "needs-auth", "submitted": "pended"}.get(stored.status, stored.status)
            warnings: list[dict[str, str]] = []
            if stored.status in ("approved", "partial"):
                chart = charts.get(stored.patient_key) or load_chart(uow, clinic_id, stored.patient_key)
                charts[stored.patient_key] = chart
                use = _usage(chart, stored, day)
                if use is not None and use.warnings:
                    warnings = use.warnings
                    state = "expiring"
            if status and state != status:
                continue
            view = request_view(stored)
            items.append({**{k: view[k] for k in ("id", "patient_id", "payer", "service", "status", "preauth_ref", "period",
                                                  "certification_type", "updated_at", "links")},
                          "worklist_state": state, "warnings": warnings})
    counts: dict[str, int] = {}
    for item in items:
        counts[item["worklist_state"]] = counts.get(item["worklist_state"], 0) + 1
    return {"clinic_id": clinic_id, "as_of": day.isoformat(), "counts": counts, "items": items}


# --------------------------------------------------------------------------- claims


def claim_documentation(uow: UnitOfWork, clinic_id: str, patient_id: str, session_id: str | None = None,
                        coverage_id: str | None = None) -> tuple[list[claims_mod.ClaimDocumentation], PatientChart, CoverageRecord | None]:
    with uow:
        chart = load_chart(uow, clinic_id, patient_id)
        try:
            coverage = _coverage(chart, coverage_id)
        except NotFound:
            if coverage_id:
                raise
            coverage = None
        sessions = chart.sessions
        if session_id is not None:
            session = chart.session(session_id)
            if session is None:
                raise NotFound(f"no administration session {session_id!r} for patient {patient_id!r}")
            sessions = [session]
        docs = [claims_mod.document_session(chart, s, coverage) for s in sessions]
    return docs, chart, coverage


def claim_fhir(uow: UnitOfWork, clinic_id: str, patient_id: str, session_id: str, coverage_id: str | None = None) -> dict:
    docs, chart, coverage = claim_documentation(uow, clinic_id, patient_id, session_id, coverage_id)
    doc = docs[0]
    ctx = MappingContext(clinic=chart.clinic)
    coverage_ref = chart.primary_ref(coverage, "Coverage") if coverage else None
    insurer = insurer_ref(_payer(coverage.payer)) if coverage else None
    return claims_mod.fhir_claim(doc, chart, coverage_ref=coverage_ref, insurer_ref=insurer,
                                 claim_id=ctx.id("Claim", "administration-sessions", session_id, "claim"),
                                 created=dt.datetime.combine(doc.service_date, dt.time(12), tzinfo=dt.timezone.utc))


# --------------------------------------------------------------------------- REMS


def rems_monitoring(uow: UnitOfWork, clinic_id: str, patient_id: str, today: dt.date | None = None) -> dict[str, Any]:
    with uow:
        chart = load_chart(uow, clinic_id, patient_id)
        day = today or _today(uow)
        submitted = {k: v.submitted_on for k, v in uow.coverage.rems_submissions(clinic_id).items()}
        sessions = rems.rems_status(chart, day, submitted)
    counts: dict[str, int] = {}
    for s in sessions:
        counts[s.status] = counts.get(s.status, 0) + 1
    return {"clinic_id": clinic_id, "patient_id": patient_id, "as_of": day.isoformat(),
            "rems_certified_site": chart.clinic.rems_certified, "counts": counts, "sessions": [s.as_dict() for s in sessions]}


def mark_rems_submitted(uow: UnitOfWork, clinic_id: str, patient_id: str, session_id: str, submitted_on: dt.date,
                        confirmation: str | None = None) -> dict[str, Any]:
    with uow:
        chart = load_chart(uow, clinic_id, patient_id)
        session = chart.session(session_id)
        if session is None or session.agent is not Agent.ESKETAMINE:
            raise NotFound(f"no esketamine session {session_id!r} for patient {patient_id!r}")
        uow.coverage.mark_rems_submitted(clinic_id, session_id, submitted_on, confirmation)
        uow.commit()
    return rems_monitoring(uow, clinic_id, patient_id)
