"""capabilities: GET [base]/metadata -> the CapabilityStatement, generated from the registry
(interactions and operations the modules registered) and the search parameter table."""

from __future__ import annotations

import datetime as dt

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from ...usecases.fhir_search import SEARCH_PARAMETERS, include_values
from ...usecases.fhir_types import WRITE_TYPES
from .common import CLINIC_HEADER, FHIR_RESPONSES, base_url, fhir_response
from .registry import Registry

SOFTWARE = "ketamine-fhir-service"
VERSION = "0.1.0"
RELEASED = dt.date(2026, 11, 29)


def capability_statement(registry: Registry, base: str) -> dict:
    resources = []
    for resource_type in sorted(registry.interactions):
        codes = registry.interactions[resource_type]
        writable = resource_type in WRITE_TYPES
        entry: dict = {
            "type": resource_type,
            "interaction": [{"code": code} for code in codes],
            "versioning": "versioned-update" if writable else "versioned",
            "readHistory": "vread" in codes,
            "updateCreate": writable and "update" in codes,
            "conditionalCreate": resource_type in registry.conditional_create,
            "conditionalUpdate": resource_type in registry.conditional_update,
            "conditionalDelete": "not-supported",
        }
        if writable:
            entry["documentation"] = (
                f"Writes need the clinic: the {CLINIC_HEADER} header, else the managing organization / patient reference."
            )
        includes = include_values(resource_type)
        if includes:
            entry["searchInclude"] = includes
        params = []
        for param in SEARCH_PARAMETERS.get(resource_type, {}).values():
            item = {"name": param.name, "type": param.type, "documentation": param.documentation}
            if param.definition:
                item["definition"] = param.definition
            params.append(item)
        if "search-type" in codes and params:
            entry["searchParam"] = params
        operations = [
            {"name": op.name, "definition": op.definition} for op in registry.operations if resource_type in op.resource_types
        ]
        if operations:
            entry["operation"] = operations
        resources.append(entry)
    rest: dict = {
        "mode": "server",
        "documentation": (
            "FHIR R4 API of the ketamine program service. Search: keyset paging (next/previous links), "
            "Prefer: handling=strict|lenient for unknown parameters. Writes: application/fhir+json, "
            "Prefer: return=minimal|representation|OperationOutcome."
        ),
        "resource": resources,
    }
    if registry.system_interactions:
        rest["interaction"] = [{"code": code} for code in registry.system_interactions]
    system_ops = [{"name": op.name, "definition": op.definition} for op in registry.operations if not op.resource_types]
    if system_ops:
        rest["operation"] = system_ops
    statement: dict = {
        "resourceType": "CapabilityStatement",
        "id": "ketamine-fhir-service",
        "name": "KetamineProgramFhirServer",
        "title": "Ketamine program FHIR interoperability service",
        "status": "active",
        "date": RELEASED.isoformat(),
        "publisher": "Ketamine program interoperability service",
        "description": "FHIR R4 server for ketamine-assisted depression treatment programs.",
        "kind": "instance",
        "software": {"name": SOFTWARE, "version": VERSION},
        "implementation": {"description": "Ketamine program FHIR interoperability service", "url": base},
        "fhirVersion": "4.0.1",
        "format": ["application/fhir+json", "json"],
        "rest": [rest],
    }
    if registry.instantiates:
        statement["instantiates"] = list(registry.instantiates)
    return statement


def register(router: APIRouter, registry: Registry) -> None:
    async def metadata(request: Request) -> Response:
        statement = capability_statement(registry, base_url(request))
        security = getattr(request.app.state, "capability_security", None)  # service.auth.smart_configuration
        if security is not None:
            statement["rest"][0]["security"] = security
        return fhir_response(orjson.dumps(statement))

    router.add_api_route(
        "/metadata", metadata, methods=["GET"], operation_id="fhir_capabilities", tags=["FHIR"],
        summary="FHIR CapabilityStatement", response_class=Response, responses=FHIR_RESPONSES,
    )
