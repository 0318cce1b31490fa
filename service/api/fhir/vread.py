"""vread: GET [base]/[type]/[id]/_history/[vid] -> that version's stored bytes."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from ...usecases.fhir_read import vread
from ...usecases.fhir_types import READ_TYPES
from .common import FHIR_RESPONSES, fhir_response, reader, run, version_headers
from .registry import Registry


async def vread_resource(request: Request, resource_type: str, resource_id: str, version_id: str) -> Response:
    version = await run(vread, reader(request), resource_type, resource_id, version_id)
    return fhir_response(version.json, headers=version_headers(version))


def register(router: APIRouter, registry: Registry) -> None:
    router.add_api_route(
        "/{resource_type}/{resource_id}/_history/{version_id}", vread_resource, methods=["GET"], operation_id="fhir_vread",
        tags=["FHIR"], summary="FHIR vread (one version)", response_class=Response, responses=FHIR_RESPONSES,
    )
    registry.interaction("vread", READ_TYPES)
