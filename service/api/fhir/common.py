"""Shared plumbing of the FHIR routes: content negotiation (406/415), `Prefer`, the base URL,
reading the body, and responses that carry stored bytes with ETag / Last-Modified /
Location headers."""

from __future__ import annotations

import email.utils
from typing import Any, Callable, TypeVar

from fastapi import Request
from starlette.responses import Response

from ..offload import in_thread
from ...usecases import Services
from ...usecases.fhir_errors import FhirError
from ...usecases.fhir_read import ResourceVersion, read_uow
from ...usecases.fhir_write import parse_json

FHIR_JSON = "application/fhir+json"
CONTENT_TYPE = f"{FHIR_JSON}; charset=utf-8"
JSON_TYPES = {"application/fhir+json", "application/json", "application/json+fhir"}
JSON_FORMATS = JSON_TYPES | {"json"}
ACCEPT_ANY = {"*/*", "application/*"}
CLINIC_HEADER = "X-Clinic-Id"
T = TypeVar("T")


def services_of(request: Request) -> Services:
    return request.app.state.services


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/fhir"


NDJSON_OPERATIONS = frozenset({"fhir_export_file"})
"""Routes that answer application/fhir+ndjson (bulk export output files): not negotiated."""


async def negotiate(request: Request) -> None:
    """406 unless the client accepts JSON (`_format` wins over Accept)."""
    if getattr(request.scope.get("route"), "operation_id", None) in NDJSON_OPERATIONS:
        return
    formats = request.query_params.getlist("_format")
    for value in formats:
        if value.split(";")[0].strip().lower() not in JSON_FORMATS:
            raise FhirError.of(406, f"_format={value[:60]} is not supported; this server speaks application/fhir+json", "not-supported")
    if formats:
        return
    accept = request.headers.get("accept")
    if not accept:
        return
    ranges = [part.split(";")[0].strip().lower() for part in accept.split(",")]
    if not any(r in JSON_TYPES or r in ACCEPT_ANY or r == "" for r in ranges):
        raise FhirError.of(406, f"Accept {accept[:100]!r} is not supported; this server speaks application/fhir+json", "not-supported")


def prefer(request: Request, name: str) -> str | None:
    """A token of the Prefer header, e.g. prefer(request, 'return') -> 'minimal'."""
    for header in request.headers.getlist("prefer"):
        for part in header.split(","):
            key, _, value = part.strip().partition("=")
            if key.strip().lower() == name:
                return value.strip().strip('"')
    return None


def strict(request: Request) -> bool:
    return (prefer(request, "handling") or "lenient").lower() == "strict"


async def read_body(request: Request) -> Any:
    """The JSON body; 415 for another media type, 400 when it is not JSON."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media not in JSON_TYPES:
        raise FhirError.of(415, f"Content-Type {media[:60] or '(none)'!r} is not supported; send application/fhir+json", "not-supported")
    return parse_json(await request.body())


def fhir_response(body: bytes | None, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    if body is None:
        return Response(status_code=status, headers=headers)
    return Response(body, status_code=status, media_type=CONTENT_TYPE, headers=headers)


def version_headers(version: ResourceVersion | Any) -> dict[str, str]:
    return {
        "ETag": f'W/"{version.version_id}"',
        "Last-Modified": email.utils.format_datetime(version.last_updated, usegmt=True),
    }


async def run(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await in_thread(function, *args, **kwargs)


def reader(request: Request):  # type: ignore[no-untyped-def]
    """A read-only unit of work, confined to the caller's clinic / patient (service/api/fhir_access.py)."""
    from ..fhir_access import scoped

    return scoped(request, read_uow(services_of(request)))


def writer(request: Request):  # type: ignore[no-untyped-def]
    from ..fhir_access import scoped

    return scoped(request, services_of(request).uow())


def clinic_header(request: Request) -> str | None:
    """The clinic writes go to: the token's clinic (an `X-Clinic-Id` naming another -> 403); the
    header only matters for an admin token without a clinic claim (or with auth disabled)."""
    from ..fhir_access import clinic_for_writes

    value = request.headers.get(CLINIC_HEADER)
    return clinic_for_writes(request, value.strip() if value and value.strip() else None)


def query_items(request: Request) -> list[tuple[str, str]]:
    items = list(request.query_params.multi_items())
    if any("\x00" in k or "\x00" in v for k, v in items):
        raise FhirError.of(400, "query parameters must not contain NUL characters", "invalid")
    if getattr(request.scope.get("route"), "operation_id", None) in ("fhir_search", "fhir_search_post"):
        from ..fhir_access import granular_filters  # a granular SMART scope narrows the search

        items += granular_filters(request, request.path_params.get("resource_type", ""))
    return items


SEARCH_QUERY_DOC = "FHIR search parameters (see the CapabilityStatement at /fhir/metadata)"
RESOURCE_BODY = {
    "requestBody": {
        "required": True,
        "description": "A FHIR R4 resource (application/fhir+json)",
        "content": {
            "application/fhir+json": {"schema": {"type": "object", "properties": {"resourceType": {"type": "string"}}, "required": ["resourceType"]}},
            "application/json": {"schema": {"type": "object", "properties": {"resourceType": {"type": "string"}}, "required": ["resourceType"]}},
        },
    }
}
FHIR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {
        "description": text,
        "content": {FHIR_JSON: {"schema": {"type": "object", "description": "A FHIR OperationOutcome" if code >= 400 else "A FHIR resource"}}},
    }
    for code, text in [
        (200, "A FHIR resource or Bundle"), (400, "Bad request (OperationOutcome)"), (404, "Not found (OperationOutcome)"),
        (406, "Not acceptable (OperationOutcome)"), (410, "Gone (OperationOutcome)"), (412, "Precondition failed (OperationOutcome)"),
        (415, "Unsupported media type (OperationOutcome)"), (422, "Unprocessable (OperationOutcome)"),
    ]
}
