"""delete: DELETE [base]/[type]/[id] -> a tombstone version and an outbox row (204; deleting
again is a no-op 204; unknown 404)."""

from __future__ import annotations

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from ...usecases.fhir_errors import OutcomeIssue, operation_outcome
from ...usecases.fhir_types import WRITE_TYPES
from ...usecases.fhir_write import delete
from .common import FHIR_RESPONSES, fhir_response, prefer, run, writer
from .registry import Registry


async def delete_resource(request: Request, resource_type: str, resource_id: str) -> Response:
    deleted = await run(delete, writer(request), resource_type, resource_id)
    headers = {"ETag": f'W/"{deleted.version_id}"'} if deleted.version_id is not None else {}
    if (prefer(request, "return") or "").lower() == "operationoutcome":
        what = "deleted" if deleted.version_id is not None else "was already deleted"
        outcome = operation_outcome([OutcomeIssue("information", "informational", f"{resource_type}/{resource_id} {what}")])
        return fhir_response(orjson.dumps(outcome), 200, headers)
    return fhir_response(None, 204, headers)


def register(router: APIRouter, registry: Registry) -> None:
    router.add_api_route(
        "/{resource_type}/{resource_id}", delete_resource, methods=["DELETE"], operation_id="fhir_delete", tags=["FHIR"],
        summary="FHIR delete", response_class=Response, responses={204: {"description": "Deleted"}, **FHIR_RESPONSES},
    )
    registry.interaction("delete", WRITE_TYPES)
