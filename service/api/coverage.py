"""Coverage routes for billing staff (`/api/v1/coverage/...`): pre-check, eligibility, Da
Vinci PAS prior authorization (create, bundle, submit, inquire, renew, exchanges), worklist,
authorized-unit usage, claim documentation per session (JSON, FHIR Claim, superbill CSV) and
SPRAVATO REMS monitoring status. Thin: parse, call one use case, respond."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from ..coverage.claims import superbill_csv
from ..coverage.client import PayerClient
from ..usecases import coverage as uc
from ..auth.roles import Action
from .deps import ServicesDep, json_response
from .problems import problem_responses
from .security import check_owner, door, tenant

router = APIRouter(prefix="/coverage", tags=["coverage"], dependencies=[Depends(door(Action.COVERAGE_READ))],
                   responses=problem_responses(404, 422))
READ = [Depends(door(Action.COVERAGE_READ))]
WRITE = [Depends(door(Action.COVERAGE_WRITE))]

Service = Literal["iv-ketamine-series", "esketamine-course", "maintenance"]
ClinicId = Annotated[str | None, Query(description="The clinic (tenant): defaults to the token's clinic; another clinic is refused (403)",
                                       min_length=1, max_length=64)]
PatientId = Annotated[str, Query(description="The patient's business key", min_length=1, max_length=64)]
CoverageId = Annotated[str | None, Query(description="Coverage record key (default: the patient's latest active coverage)")]
FHIR_JSON = "application/fhir+json"


def _client(base_url: str) -> PayerClient:
    return PayerClient(base_url)


class PriorAuthCreate(BaseModel):
    """Create a PAS prior-authorization request (stored as draft until submitted)."""

    model_config = ConfigDict(extra="forbid")
    clinic_id: str | None = Field(default=None, min_length=1, max_length=64, description="Defaults to the token's clinic")
    patient_id: str = Field(min_length=1, max_length=64)
    service: Service
    coverage_id: str | None = None
    start: dt.date | None = Field(default=None, description="First day of the requested service period (default: today)")


class RenewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: dt.date | None = None


class RemsSubmitted(BaseModel):
    model_config = ConfigDict(extra="forbid")
    clinic_id: str | None = Field(default=None, description="Defaults to the token's clinic")
    patient_id: str
    submitted_on: dt.date
    confirmation: str | None = Field(default=None, max_length=200)


class EligibilityCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")
    clinic_id: str | None = Field(default=None, description="Defaults to the token's clinic")
    patient_id: str
    service: Service
    coverage_id: str | None = None


@router.get("/precheck", operation_id="coverage_precheck", summary="Payer criteria checklist for a service")
def precheck(request: Request, services: ServicesDep, patient_id: PatientId, service: Service, clinic_id: ClinicId = None,
             coverage_id: CoverageId = None, as_of: dt.date | None = None) -> Response:
    """Each criterion of the payer's rule for `service`: met / missing / not-applicable, with the
    evidence and links to the records (`/api/v1/{kind}/{key}`) and FHIR resources (`Type/id`)."""
    clinic_id = tenant(request, clinic_id)
    return json_response(uc.precheck(services.uow(), clinic_id, patient_id, service, coverage_id, as_of))


@router.post("/eligibility", operation_id="coverage_eligibility", summary="Send a CoverageEligibilityRequest to the payer",
             dependencies=WRITE)
def eligibility(request: Request, services: ServicesDep, body: EligibilityCheck) -> Response:
    """POSTs a CoverageEligibilityRequest to `{payer}/CoverageEligibilityRequest`, stores the
    exchange and returns the CoverageEligibilityResponse with a summary (in force, benefits)."""
    clinic_id = tenant(request, body.clinic_id)
    return json_response(uc.check_eligibility(services.uow_factory, _client, clinic_id, body.patient_id, body.service,
                                              body.coverage_id, services.settings.payer_endpoints))


@router.post("/prior-auth", operation_id="coverage_prior_auth_create", status_code=201, summary="Create a PAS request",
             dependencies=WRITE)
def create_prior_auth(request: Request, services: ServicesDep, body: PriorAuthCreate) -> Response:
    clinic_id = tenant(request, body.clinic_id)
    return json_response(uc.create_prior_auth(services.uow(), clinic_id, body.patient_id, body.service, body.coverage_id,
                                              body.start), 201)


@router.get("/prior-auth", operation_id="coverage_worklist", summary="Prior-authorization worklist")
def worklist(request: Request, services: ServicesDep, clinic_id: ClinicId = None,
             state: Annotated[Literal["needs-auth", "pended", "expiring", "denied", "approved", "partial"] | None, Query()] = None,
             patient_id: str | None = None, as_of: dt.date | None = None) -> Response:
    """Every request with its worklist state: needs-auth (draft / failed to send), pended,
    expiring (approved, <= 1 session or <= 7 days left), denied, approved, partial."""
    clinic_id = tenant(request, clinic_id)
    return json_response(uc.worklist(services.uow(), clinic_id, state, patient_id, as_of))


@router.get("/prior-auth/{request_id}", operation_id="coverage_prior_auth_get", summary="One prior-authorization request")
def get_prior_auth(request: Request, services: ServicesDep, request_id: str) -> Response:
    _owned(request, services, request_id)
    return json_response(uc.get_prior_auth(services.uow(), request_id))


@router.get("/prior-auth/{request_id}/bundle", operation_id="coverage_prior_auth_bundle", summary="The PAS request Bundle",
            response_class=Response, responses={200: {"content": {FHIR_JSON: {}}}})
def prior_auth_bundle(request: Request, services: ServicesDep, request_id: str) -> Response:
    """The Da Vinci PAS 2.2.1 request Bundle (profile-pas-request-bundle) exactly as sent."""
    import orjson

    _owned(request, services, request_id)
    return Response(orjson.dumps(uc.prior_auth_bundle(services.uow(), request_id)), media_type=FHIR_JSON)


@router.post("/prior-auth/{request_id}/submit", operation_id="coverage_prior_auth_submit", summary="POST to {payer}/Claim/$submit",
             dependencies=WRITE)
def submit(request: Request, services: ServicesDep, request_id: str) -> Response:
    _owned(request, services, request_id)
    return json_response(uc.submit_prior_auth(services.uow_factory, _client, request_id, services.settings.payer_endpoints))


@router.post("/prior-auth/{request_id}/inquire", operation_id="coverage_prior_auth_inquire", summary="POST to {payer}/Claim/$inquire",
             dependencies=WRITE)
def inquire(request: Request, services: ServicesDep, request_id: str) -> Response:
    _owned(request, services, request_id)
    return json_response(uc.inquire_prior_auth(services.uow_factory, _client, request_id, services.settings.payer_endpoints))


@router.post("/prior-auth/{request_id}/renew", operation_id="coverage_prior_auth_renew", status_code=201,
             summary="Create a re-authorization (certification type renewal)", dependencies=WRITE)
def renew(request: Request, services: ServicesDep, request_id: str, body: RenewRequest | None = None) -> Response:
    stored = _owned(request, services, request_id)
    return json_response(uc.create_prior_auth(services.uow(), stored.clinic_id, stored.patient_key, stored.service,
                                              stored.coverage_key, body.start if body else None, renewal_of=request_id), 201)


@router.get("/prior-auth/{request_id}/exchanges", operation_id="coverage_prior_auth_exchanges", summary="Every payer exchange")
def exchanges(request: Request, services: ServicesDep, request_id: str) -> Response:
    _owned(request, services, request_id)
    return json_response({"items": uc.prior_auth_exchanges(services.uow(), request_id)})


@router.get("/authorizations", operation_id="coverage_authorizations", summary="Authorized units used and left")
def authorizations(request: Request, services: ServicesDep, patient_id: PatientId, clinic_id: ClinicId = None,
                   as_of: dt.date | None = None) -> Response:
    clinic_id = tenant(request, clinic_id)
    return json_response(uc.authorization_usage(services.uow(), clinic_id, patient_id, as_of))


@router.get("/claims", operation_id="coverage_claims", summary="Claim documentation per session (JSON, superbill CSV or PDF)",
            responses={200: {"content": {"text/csv": {}, "application/pdf": {}}}})
def claims(request: Request, services: ServicesDep, patient_id: PatientId, clinic_id: ClinicId = None, session_id: str | None = None,
           coverage_id: CoverageId = None, format: Literal["json", "csv", "pdf"] = "json") -> Response:
    """Billing lines per administration session (codes, units, modifiers, NDC, diagnosis
    pointers, place of service, reason) and what the documentation does not support."""
    clinic_id = tenant(request, clinic_id)
    docs, chart, coverage = uc.claim_documentation(services.uow(), clinic_id, patient_id, session_id, coverage_id)
    if format == "pdf":
        from ..coverage.claims import superbill
        from ..coverage.superbill_pdf import render_superbill

        bill = superbill(docs, chart, payer=coverage.payer if coverage else None,
                         member_id=coverage.member_id if coverage else None, statement_date=dt.date.today())
        return Response(render_superbill(bill), media_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="superbill-{patient_id}.pdf"'})
    if format == "csv":
        return Response(superbill_csv(docs), media_type="text/csv",
                        headers={"Content-Disposition": f'attachment; filename="superbill-{patient_id}.csv"'})
    return json_response({"clinic_id": clinic_id, "patient_id": patient_id, "sessions": [d.as_dict() for d in docs]})


@router.get("/claims/{session_id}/fhir", operation_id="coverage_claim_fhir", summary="Claim documentation as a FHIR Claim",
            response_class=Response, responses={200: {"content": {FHIR_JSON: {}}}})
def claim_fhir(request: Request, services: ServicesDep, session_id: str, patient_id: PatientId, clinic_id: ClinicId = None,
               coverage_id: CoverageId = None) -> Response:
    import orjson

    clinic_id = tenant(request, clinic_id)
    return Response(orjson.dumps(uc.claim_fhir(services.uow(), clinic_id, patient_id, session_id, coverage_id)), media_type=FHIR_JSON)


@router.get("/rems", operation_id="coverage_rems", summary="SPRAVATO REMS monitoring form status per session")
def rems(request: Request, services: ServicesDep, patient_id: PatientId, clinic_id: ClinicId = None,
         as_of: dt.date | None = None) -> Response:
    clinic_id = tenant(request, clinic_id)
    return json_response(uc.rems_monitoring(services.uow(), clinic_id, patient_id, as_of))


@router.post("/rems/{session_id}/submitted", operation_id="coverage_rems_submitted", summary="Record a REMS form submission",
             dependencies=WRITE)
def rems_submitted(request: Request, services: ServicesDep, session_id: str, body: RemsSubmitted) -> Response:
    clinic_id = tenant(request, body.clinic_id)
    return json_response(uc.mark_rems_submitted(services.uow(), clinic_id, body.patient_id, session_id, body.submitted_on,
                                                body.confirmation))


def _owned(request: Request, services: Any, request_id: str) -> Any:
    """The stored prior-authorization request, if it belongs to the token's clinic (else 404)."""
    with services.uow() as uow:
        stored = uow.coverage.get_request(request_id)
    if stored is None:
        from ..usecases import NotFound

        raise NotFound(f"no prior-authorization request {request_id!r}")
    check_owner(request, stored.clinic_id)
    return stored


__all__ = ["router"]
_: Any = None
