"""Malformed bodies on EVERY write endpoint (POST/PUT routes enumerated from the app): truncated
JSON, wrong types, a huge array, deep nesting, invalid UTF-8. Each gets a clear 4xx (never 2xx,
never 5xx) and the database is unchanged. Sent with an admin token of the demo clinic, so the
bodies, not the credentials, are what is judged."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from tests.security.conftest import CLINIC, row_counts
from tests.tokens import bearer

BODIES: dict[str, bytes] = {
    "truncated": b'{"id": "mal-1", "clinic_id": "riverbend", "name": ',
    "wrong-types": b'{"id": 12, "clinic_id": ["riverbend"], "resourceType": 7, "entry": "x", "patient_id": {}}',
    "huge-array": b"[" + b"0," * 200_000 + b"0]",
    "deep-nesting": b'{"a":' * 200 + b"1" + b"}" * 200,
    "invalid-utf8": b'{"id": "mal-1", "name": "\xff\xfe\xfa"}',
}
PATH_VALUES = {"kind": "patients", "key": "mal-1", "resource_type": "Patient", "resource_id": "mal-1",
               "request_id": "mal-1", "name": "mal-1", "session_id": "mal-1", "job_id": "mal-1"}
WRONG_TYPES_ACCEPTED = {"fhir_validate"}
"""$validate answers 200 with an OperationOutcome for any JSON (FHIR R4 semantics); malformed
JSON is still a 400 there."""


def write_routes(app) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    """(method, concrete path, operation id) of every POST/PUT/PATCH operation the app serves
    (from its OpenAPI document, which FastAPI builds from the mounted routes)."""
    routes = []
    for template, operations in app.openapi()["paths"].items():
        for method, operation in operations.items():
            if method in ("post", "put", "patch"):
                path = re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES.get(m.group(1), "x"), template)
                routes.append((method.upper(), path, operation.get("operationId", "")))
    return routes


def _content_type(path: str) -> str:
    if path.startswith("/fhir"):
        return "application/fhir+json"
    if path.startswith("/api/v1/import/"):
        return "application/x-ndjson"
    return "application/json"


def test_every_write_endpoint_refuses_malformed_bodies(app, client: TestClient, services) -> None:  # type: ignore[no-untyped-def]
    routes = write_routes(app)
    assert len(routes) >= 50, routes  # every record kind's PUT/POST/$preview, coverage, sync, FHIR
    headers = {**bearer(roles=("admin",), clinic=CLINIC), "Accept": "application/json, application/fhir+json"}
    before = row_counts(services)
    tried = 0
    failures = []
    for method, path, operation in routes:
        for name, body in BODIES.items():
            if name == "wrong-types" and operation in WRONG_TYPES_ACCEPTED:
                continue
            response = client.request(method, path, content=body, headers={**headers, "Content-Type": _content_type(path)})
            tried += 1
            if path.startswith("/api/v1/import/") and response.status_code == 200:
                # bulk import reports per row (each row is its own transaction): every row must be an error
                if response.json()["error"] == response.json()["total"] and not response.json()["created"]:
                    continue
            if not 400 <= response.status_code < 500:
                failures.append((method, path, name, response.status_code, response.text[:200]))
    assert not failures, failures
    assert row_counts(services) == before
    print(f"malformed bodies tried: {tried} on {len(routes)} write endpoints")
