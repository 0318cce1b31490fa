"""The FastAPI application factory (the composition root of the HTTP side).

`create_app(settings=None)` builds the app: problem-document error handling, body limits, the
domain API under /api/v1, /health, and an OpenAPI document whose request bodies are the
domain models. More routers (the FHIR REST API, coverage) plug in through `ROUTERS` or
`create_app(..., extra_routers=[...])`.
"""

from __future__ import annotations

from typing import Any, Iterable

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from ..config import Settings, get_settings
from ..domain.records import RECORD_KINDS
from ..usecases import Services
from . import health, imports, records, summary
from . import sync as sync_api
from . import coverage as coverage_api
from . import packets as packets_api
from ..web import billing as billing_web
from .fhir import install_fhir_api
from .limits import BodyLimitMiddleware
from .problems import PROBLEM_MEDIA_TYPE, install_problem_handlers

API_PREFIX = "/api/v1"
TITLE = "Ketamine program FHIR interoperability service"
VERSION = "0.1.0"
DESCRIPTION = (
    "Domain API for ketamine-assisted depression treatment programs. Records are validated, mapped to "
    "FHIR R4 (US Core) and stored with an outbox for EHR sync. Errors are RFC 9457 problem documents."
)


def request_body_schemas() -> dict[str, Any]:
    """JSON Schemas (validation mode) of every record kind's model and the models they use,
    keyed by model name, with refs pointing into #/components/schemas."""
    models = [(spec.model, "validation") for spec in RECORD_KINDS.values()]
    _, top = models_json_schema(models, ref_template="#/components/schemas/{model}")  # type: ignore[arg-type]
    return dict(top.get("$defs", {}))


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, description=app.description, routes=app.routes,
        servers=app.servers or None,
    )
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for name, model_schema in request_body_schemas().items():
        if name in components and components[name] != model_schema:
            raise RuntimeError(f"OpenAPI schema name clash: {name}")
        components[name] = model_schema
    _problems_only(schema)
    app.openapi_schema = schema
    return schema


def _problems_only(schema: dict[str, Any]) -> None:
    """Error responses are problem documents only (FastAPI would also list application/json
    and its own HTTPValidationError shape, which this service never sends)."""
    problem = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, operations in schema.get("paths", {}).items():
        if path.startswith("/fhir"):  # FHIR errors are OperationOutcomes (service/api/fhir/)
            continue
        for operation in operations.values():
            for code, response in operation.get("responses", {}).items():
                if code[0] in "45":
                    response["content"] = dict(problem)
                    if code == "422" and response.get("description") == "Validation Error":
                        response["description"] = "Unprocessable Content"
    components = schema.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)


def create_app(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
    extra_routers: Iterable[tuple[str, APIRouter]] = (),
) -> FastAPI:
    """The service's ASGI app. `services` overrides the composition (tests pass a clock)."""
    settings = settings or (services.settings if services else get_settings())
    services = services or Services(settings=settings)
    app = FastAPI(title=TITLE, version=VERSION, description=DESCRIPTION)
    app.state.services = services
    app.state.settings = settings

    def body_limit(path: str) -> int:
        if path.startswith(f"{API_PREFIX}/import/") or path.rstrip("/") == "/fhir":  # imports, FHIR transaction Bundles
            return settings.max_import_bytes
        return settings.max_record_bytes

    app.add_middleware(BodyLimitMiddleware, limit_for=body_limit)
    install_problem_handlers(app)  # outermost: turns anything unexpected into a 500 problem
    install_fhir_api(app)  # FHIR R4 REST API under /fhir; its errors are OperationOutcomes (service/api/fhir/)

    app.include_router(health.router)
    app.include_router(imports.router, prefix=API_PREFIX)
    app.include_router(summary.router, prefix=API_PREFIX)
    app.include_router(records.records_router(), prefix=API_PREFIX)
    app.include_router(sync_api.router, prefix=API_PREFIX)
    app.include_router(sync_api.metrics_router)
    app.include_router(coverage_api.router, prefix=API_PREFIX)
    app.include_router(packets_api.router, prefix=API_PREFIX)  # medical-necessity packets (service/coverage/packet.py)
    app.include_router(billing_web.router)  # the billing page at /billing (service/web/)
    for prefix, router in extra_routers:
        app.include_router(router, prefix=prefix)

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app
