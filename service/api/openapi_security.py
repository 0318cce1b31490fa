"""OpenAPI: the security requirements and the error responses every guarded operation can give
(401, 403, 429 always; 400 JSON too deep / malformed, 413 too large and 415 for operations with a
body), as problem documents outside /fhir and OperationOutcomes under /fhir. Public operations
(health, SMART discovery, CapabilityStatement) get no security requirement."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from .problems import PROBLEM_MEDIA_TYPE

PUBLIC = {"/health", "/fhir/metadata", "/.well-known/smart-configuration", "/fhir/.well-known/smart-configuration"}
FHIR_JSON = "application/fhir+json"
GUARD_CODES = (401, 403, 429)
BODY_CODES = (400, 413, 415, 422)


def _response(path: str, code: int) -> dict[str, Any]:
    if path.startswith("/fhir"):
        content = {FHIR_JSON: {"schema": {"type": "object", "description": "A FHIR OperationOutcome"}}}
    else:
        content = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    response: dict[str, Any] = {"description": HTTPStatus(code).phrase, "content": content}
    if code == 429:
        response["headers"] = {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}}
    if code == 401:
        response["headers"] = {"WWW-Authenticate": {"description": "Bearer challenge (RFC 6750)", "schema": {"type": "string"}}}
    return response


def document_security(schema: dict[str, Any]) -> None:
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            if path in PUBLIC:
                operation.pop("security", None)
                operation["security"] = []
                continue
            operation["security"] = [{"SMARTBearer": []}]
            codes = list(GUARD_CODES)
            if path.startswith("/fhir"):
                codes.append(404)  # unknown types, ids, jobs and files: an OperationOutcome
            if method in ("post", "put", "patch"):
                codes += BODY_CODES
            for code in codes:
                responses.setdefault(str(code), _response(path, code))
    schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes["SMARTBearer"] = {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "SMART on FHIR access token. Dev mode: `python -m service dev-token --scope 'system/*.cruds' "
        "--role admin --clinic <id>`; otherwise from the identity provider (see /.well-known/smart-configuration).",
    }
