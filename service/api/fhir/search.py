"""search-type: GET [type]?params and POST [type]/_search (form-encoded parameters, merged with
the query string). Searchset Bundles built from stored bytes; see usecases/fhir_search.py."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from starlette.responses import Response

from ...usecases.fhir_errors import FhirError
from ...usecases.fhir_search import search
from ...usecases.fhir_types import READ_TYPES
from .common import FHIR_RESPONSES, base_url, fhir_response, query_items, reader, run, strict
from .registry import Registry

FORM = "application/x-www-form-urlencoded"


async def search_get(request: Request, resource_type: str) -> Response:
    bundle = await run(search, reader(request), resource_type, query_items(request), base=base_url(request), strict=strict(request))
    return fhir_response(bundle.to_bytes())


async def search_post(request: Request, resource_type: str) -> Response:
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if body.strip() and media != FORM:
        raise FhirError.of(415, f"POST _search takes {FORM}, not {media[:60] or '(none)'!r}", "not-supported")
    try:
        form = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise FhirError.of(400, "the form body is not UTF-8", "invalid") from None
    params = query_items(request) + form
    bundle = await run(search, reader(request), resource_type, params, base=base_url(request), strict=strict(request))
    return fhir_response(bundle.to_bytes())


def register_get(router: APIRouter, registry: Registry) -> None:
    router.add_api_route(
        "/{resource_type}", search_get, methods=["GET"], operation_id="fhir_search", tags=["FHIR"],
        summary="FHIR search (GET)", response_class=Response, responses=FHIR_RESPONSES,
    )
    registry.interaction("search-type", READ_TYPES)


def register_post(router: APIRouter, registry: Registry) -> None:
    router.add_api_route(
        "/{resource_type}/_search", search_post, methods=["POST"], operation_id="fhir_search_post", tags=["FHIR"],
        summary="FHIR search (POST, form-encoded)", response_class=Response, responses=FHIR_RESPONSES,
        openapi_extra={"requestBody": {"required": False, "content": {FORM: {"schema": {"type": "object", "additionalProperties": {"type": "string"}}}}}},
    )
