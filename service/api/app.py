"""The FastAPI application factory (the composition root of the HTTP side).

`create_app(settings=None)` builds the app: problem-document error handling, body limits, the
domain API under /api/v1, /health, and an OpenAPI document whose request bodies are the
domain models. More routers (the FHIR REST API, coverage) plug in through `ROUTERS` or
`create_app(..., extra_routers=[...])`.
"""

from __future__ import annotations

from typing import Any, Iterable

from fastapi import APIRouter, Depends, FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from ..auth import AuthSettings
from ..auth.roles import Action
from ..auth.smart_configuration import capability_security
from ..config import Settings, get_settings
from ..domain.records import RECORD_KINDS
from ..usecases import Services
from . import health, imports, records, summary
from . import sync as sync_api
from . import coverage as coverage_api
from . import packets as packets_api
from ..web import billing as billing_web
from . import audit as audit_api
from . import discovery
from .fhir import install_fhir_api
from .json_limits import JsonDepthMiddleware
from .limits import BodyLimitMiddleware
from .openapi_security import document_security
from .problems import PROBLEM_MEDIA_TYPE, install_problem_handlers
from .security import door, install_security
from .write_lane import RecordWriteLane

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
    document_security(schema)
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


def telemetry_config(settings: Settings) -> dict[str, Any]:
    """FastAPI's native OpenTelemetry, decided once at start-up (`Settings.otel_telemetry`):
    spans and metrics when asked for, never its log records (exception messages and stack
    traces leave the process there, and a message can hold patient data). Off, a request skips
    FastAPI's per-request look-up of the global providers (~2 % of a session write's server
    CPU, docs/decisions/0011)."""
    on = settings.otel_telemetry
    return {"tracing": on, "metrics": on, "logs": False, "operation_spans": on}


def create_app(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
    extra_routers: Iterable[tuple[str, APIRouter]] = (),
    auth_settings: AuthSettings | None = None,
    write_lane: bool = True,
) -> FastAPI:
    """The service's ASGI app. `services` overrides the composition (tests pass a clock);
    `auth_settings` the inbound authentication (default: `AuthSettings()` from `AUTH_*`);
    `write_lane=False` leaves record PUTs to FastAPI's routing (service/api/write_lane.py; tests
    compare the two)."""
    settings = settings or (services.settings if services else get_settings())
    services = services or Services(settings=settings)
    auth_settings = auth_settings or AuthSettings()
    app = FastAPI(title=TITLE, version=VERSION, description=DESCRIPTION, telemetry=telemetry_config(settings))
    app.state.services = services
    app.state.settings = settings
    install_security(app, auth_settings, rate_per_minute=settings.rate_limit_per_minute, rate_burst=settings.rate_limit_burst)

    def body_limit(path: str) -> int:
        if path.startswith(f"{API_PREFIX}/import/") or path.rstrip("/") == "/fhir":  # imports, FHIR transaction Bundles
            return settings.max_import_bytes
        return settings.max_record_bytes

    if write_lane:  # PUT /api/v1/<kind>/<key> past FastAPI's routing; innermost, inside the limits below
        app.add_middleware(RecordWriteLane, fastapi_app=app)
    app.add_middleware(JsonDepthMiddleware)  # JSON nesting <= 64 for every JSON body (inside the size limit)
    app.add_middleware(BodyLimitMiddleware, limit_for=body_limit)
    install_problem_handlers(app)  # outermost: turns anything unexpected into a 500 problem
    app.include_router(discovery.router)  # SMART discovery (public), before the FHIR routes
    app.include_router(discovery.dev_router)  # dev-mode token for the demo page (loopback only)
    app.include_router(audit_api.audit_fhir_router, prefix="/fhir")  # AuditEvent (admins), before the FHIR routes
    install_fhir_api(app)  # FHIR R4 REST API under /fhir; its errors are OperationOutcomes (service/api/fhir/)
    # rest.security from service.auth; its oauth-uris extension is left out: that profile requires an
    # `authorize` URL, which a Backend Services resource server has none of (SMART 2.x clients
    # discover the token endpoint at /fhir/.well-known/smart-configuration instead)
    security = capability_security(auth_settings)
    security.pop("extension", None)
    app.state.capability_security = security
    app.add_middleware(audit_api.AuditMiddleware, fastapi_app=app)  # one AuditEvent per API request
    audit_api.install_audit_shutdown(app)  # buffered audit events are written before the app stops

    app.include_router(health.router)
    app.include_router(audit_api.audit_export_router, prefix=API_PREFIX)
    app.include_router(imports.router, prefix=API_PREFIX)
    app.include_router(summary.router, prefix=API_PREFIX)
    for kind_router in records.kind_routers(API_PREFIX):
        app.include_router(kind_router, prefix=API_PREFIX)
    app.include_router(sync_api.router, prefix=API_PREFIX)
    app.include_router(sync_api.metrics_router)
    app.include_router(coverage_api.router, prefix=API_PREFIX)
    app.include_router(packets_api.router, prefix=API_PREFIX)  # medical-necessity packets (service/coverage/packet.py)
    app.include_router(billing_web.router)  # the billing page at /billing (service/web/)
    for prefix, router in extra_routers:
        app.include_router(router, prefix=prefix)

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app
