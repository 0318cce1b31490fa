"""$validate: POST [base]/[type]/$validate (a resource, or Parameters with resource / profile /
mode; `?profile=` works too). Always 200 with an OperationOutcome.

Full profile validation uses the HL7 validator when configured: VALIDATOR_URL (a running
`fhir-validator.jar serve`) or FHIR_VALIDATE_WITH_HL7=1 (a JVM started in-process on first
use). `app.state.fhir_profile_validator` may also be set directly (tests)."""

from __future__ import annotations

import threading
from typing import Any

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from ....usecases.fhir_types import READ_TYPES
from ....usecases.fhir_validate import validate
from ..common import FHIR_RESPONSES, RESOURCE_BODY, fhir_response, query_items, read_body, reader, run
from ..registry import Operation, Registry

_LOCK = threading.Lock()


def profile_validator(request: Request) -> Any:
    state = request.app.state
    existing = getattr(state, "fhir_profile_validator", None)
    if existing is not None:
        return existing
    settings = state.settings
    with _LOCK:
        existing = getattr(state, "fhir_profile_validator", None)
        if existing is not None:
            return existing
        if getattr(settings, "validator_url", None):
            from ....conformance.remote import RemoteHL7Validator

            state.fhir_profile_validator = RemoteHL7Validator(settings.validator_url)
        elif getattr(settings, "fhir_validate_with_hl7", False):
            from ....conformance.hl7_validator import HL7Validator

            state.fhir_profile_validator = HL7Validator()
        return getattr(state, "fhir_profile_validator", None)


async def validate_resource(request: Request, resource_type: str) -> Response:
    body = await read_body(request)
    validator = await run(profile_validator, request)
    outcome = await run(validate, reader(request), resource_type, body, validator=validator, query=query_items(request))
    return fhir_response(orjson.dumps(outcome))


def register(router: APIRouter, registry: Registry) -> None:
    router.add_api_route(
        "/{resource_type}/$validate", validate_resource, methods=["POST"], operation_id="fhir_validate", tags=["FHIR"],
        summary="FHIR $validate (OperationOutcome, 200 even when invalid)", response_class=Response,
        responses=FHIR_RESPONSES, openapi_extra=RESOURCE_BODY,
    )
    registry.operation(Operation("validate", "http://hl7.org/fhir/OperationDefinition/Resource-validate", READ_TYPES,
                                 "Structure, business rules and (when configured) HL7 profile validation"))
