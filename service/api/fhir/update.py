"""update: PUT [base]/[type]/[id] (creates with the client's id when absent; If-Match -> 412 on
a version mismatch) and conditional update PUT [base]/[type]?criteria."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from ...usecases.fhir_errors import FhirError
from ...usecases.fhir_types import WRITE_TYPES
from ...usecases.fhir_write import conditional_update, update
from .common import FHIR_RESPONSES, RESOURCE_BODY, clinic_header, query_items, read_body, run, writer
from .registry import Registry
from .respond import written_response


async def update_resource(request: Request, resource_type: str, resource_id: str) -> Response:
    body = await read_body(request)
    written = await run(
        update, writer(request), resource_type, resource_id, body, clinic_header=clinic_header(request),
        if_match=request.headers.get("if-match"),
    )
    return written_response(request, written)


async def update_conditional(request: Request, resource_type: str) -> Response:
    criteria = [(k, v) for k, v in query_items(request) if k not in ("_format", "_pretty")]
    if not criteria:
        raise FhirError.of(400, "PUT on a type needs search criteria (conditional update) or an id in the URL", "invalid")
    body = await read_body(request)
    written = await run(
        conditional_update, writer(request), resource_type, urlencode(criteria), body, clinic_header=clinic_header(request),
        if_match=request.headers.get("if-match"),
    )
    return written_response(request, written)


def register(router: APIRouter, registry: Registry) -> None:
    router.add_api_route(
        "/{resource_type}/{resource_id}", update_resource, methods=["PUT"], operation_id="fhir_update", tags=["FHIR"],
        summary="FHIR update (If-Match for version checks; X-Clinic-Id names the clinic)", response_class=Response,
        responses={201: {"description": "Created"}, **FHIR_RESPONSES}, openapi_extra=RESOURCE_BODY,
    )
    router.add_api_route(
        "/{resource_type}", update_conditional, methods=["PUT"], operation_id="fhir_update_conditional", tags=["FHIR"],
        summary="FHIR conditional update (PUT [type]?criteria)", response_class=Response,
        responses={201: {"description": "Created"}, **FHIR_RESPONSES}, openapi_extra=RESOURCE_BODY,
    )
    registry.interaction("update", WRITE_TYPES)
    registry.conditional_update.update(WRITE_TYPES)
