"""create: POST [base]/[type] (server-assigned uuid4 id; If-None-Exist = conditional create).
Response per `Prefer: return=minimal|representation|OperationOutcome` with Location, ETag and
Last-Modified."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from ...usecases.fhir_types import WRITE_TYPES
from ...usecases.fhir_write import create
from .common import FHIR_RESPONSES, RESOURCE_BODY, clinic_header, query_items, read_body, run, writer
from .registry import Registry
from .respond import written_response


async def create_resource(request: Request, resource_type: str) -> Response:
    body = await read_body(request)
    # conditional create: If-None-Exist, or search criteria in the query string (fhirpy, Aidbox style)
    criteria = request.headers.get("if-none-exist") or urlencode(
        [(k, v) for k, v in query_items(request) if k not in ("_format", "_pretty")]
    )
    written = await run(
        create, writer(request), resource_type, body, clinic_header=clinic_header(request), if_none_exist=criteria or None,
    )
    return written_response(request, written)


def register(router: APIRouter, registry: Registry) -> None:
    router.add_api_route(
        "/{resource_type}", create_resource, methods=["POST"], operation_id="fhir_create", tags=["FHIR"],
        summary="FHIR create (If-None-Exist for conditional create; X-Clinic-Id names the clinic)",
        response_class=Response, responses={201: {"description": "Created"}, **FHIR_RESPONSES}, openapi_extra=RESOURCE_BODY,
    )
    registry.interaction("create", WRITE_TYPES)
    registry.conditional_create.update(WRITE_TYPES)
