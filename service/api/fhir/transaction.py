"""transaction and batch: POST [base] with a Bundle (see usecases/fhir_transaction.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from ...usecases.fhir_transaction import process
from .common import FHIR_RESPONSES, RESOURCE_BODY, base_url, clinic_header, fhir_response, prefer, read_body, run, services_of
from .registry import Registry
from ..fhir_access import scoped_factory


async def post_bundle(request: Request) -> Response:
    body = await read_body(request)
    services = services_of(request)
    bundle = await run(
        process, scoped_factory(request, services.uow_factory), body, base=base_url(request), clinic=clinic_header(request),
        prefer=prefer(request, "return"),
    )
    return fhir_response(bundle.to_bytes())


def register(router: APIRouter, registry: Registry) -> None:
    router.add_api_route(
        "", post_bundle, methods=["POST"], operation_id="fhir_transaction", tags=["FHIR"],
        summary="FHIR transaction or batch Bundle", response_class=Response, responses=FHIR_RESPONSES, openapi_extra=RESOURCE_BODY,
    )
    registry.system("transaction")
    registry.system("batch")
