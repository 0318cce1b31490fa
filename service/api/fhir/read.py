"""read: GET [base]/[type]/[id] -> the stored bytes, ETag and Last-Modified (410 if deleted)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from ...usecases.fhir_read import read
from ...usecases.fhir_types import READ_TYPES
from .common import FHIR_RESPONSES, fhir_response, reader, run, version_headers
from .registry import Registry


async def read_resource(request: Request, resource_type: str, resource_id: str) -> Response:
    version = await run(read, reader(request), resource_type, resource_id)
    return fhir_response(version.json, headers=version_headers(version))


def register(router: APIRouter, registry: Registry) -> None:
    router.add_api_route(
        "/{resource_type}/{resource_id}", read_resource, methods=["GET"], operation_id="fhir_read", tags=["FHIR"],
        summary="FHIR read", response_class=Response, responses=FHIR_RESPONSES,
    )
    registry.interaction("read", READ_TYPES)
