"""Patient/$everything: GET [base]/Patient/[id]/$everything (paged with `_count`, next links)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from ....usecases.fhir_search import everything
from ..common import FHIR_RESPONSES, base_url, fhir_response, query_items, reader, run, strict
from ..registry import Operation, Registry


async def patient_everything(request: Request, resource_id: str) -> Response:
    bundle = await run(everything, reader(request), resource_id, query_items(request), base=base_url(request), strict=strict(request))
    return fhir_response(bundle.to_bytes())


def register(router: APIRouter, registry: Registry) -> None:
    router.add_api_route(
        "/Patient/{resource_id}/$everything", patient_everything, methods=["GET"], operation_id="fhir_patient_everything",
        tags=["FHIR"], summary="FHIR Patient/$everything", response_class=Response, responses=FHIR_RESPONSES,
    )
    registry.operation(Operation("everything", "http://hl7.org/fhir/OperationDefinition/Patient-everything", ("Patient",),
                                 "The patient's compartment plus referenced practitioners, organizations, locations, medications"))
