"""history-instance (GET [type]/[id]/_history) and history-type (GET [type]/_history): Bundles
of type history, newest first, with `_count`, `_since` and next links."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from ...usecases.fhir_read import instance_history, type_history
from ...usecases.fhir_types import READ_TYPES
from .common import FHIR_RESPONSES, base_url, fhir_response, query_items, reader, run
from .registry import Registry


async def history_of_instance(request: Request, resource_type: str, resource_id: str) -> Response:
    bundle = await run(instance_history, reader(request), resource_type, resource_id, query_items(request), base=base_url(request))
    return fhir_response(bundle.to_bytes())


async def history_of_type(request: Request, resource_type: str) -> Response:
    bundle = await run(type_history, reader(request), resource_type, query_items(request), base=base_url(request))
    return fhir_response(bundle.to_bytes())


def register_type(router: APIRouter, registry: Registry) -> None:
    router.add_api_route(
        "/{resource_type}/_history", history_of_type, methods=["GET"], operation_id="fhir_history_type", tags=["FHIR"],
        summary="FHIR type history", response_class=Response, responses=FHIR_RESPONSES,
    )
    registry.interaction("history-type", READ_TYPES)


def register_instance(router: APIRouter, registry: Registry) -> None:
    router.add_api_route(
        "/{resource_type}/{resource_id}/_history", history_of_instance, methods=["GET"], operation_id="fhir_history_instance",
        tags=["FHIR"], summary="FHIR instance history", response_class=Response, responses=FHIR_RESPONSES,
    )
    registry.interaction("history-instance", READ_TYPES)
