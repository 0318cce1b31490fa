"""The response of a write, shaped by `Prefer: return=`."""

from __future__ import annotations

import orjson
from fastapi import Request
from starlette.responses import Response

from ...usecases.fhir_errors import OutcomeIssue, operation_outcome
from ...usecases.fhir_write import Written
from .common import base_url, fhir_response, prefer, version_headers


def written_response(request: Request, written: Written) -> Response:
    headers = version_headers(written)
    headers["Location"] = f"{base_url(request)}/{written.resource_type}/{written.id}/_history/{written.version_id}"
    mode = (prefer(request, "return") or "representation").lower()
    if mode == "minimal":
        return fhir_response(None, written.status, headers)
    if mode == "operationoutcome":
        what = "created" if written.created else "updated" if written.changed else "unchanged (same content)"
        outcome = operation_outcome([OutcomeIssue("information", "informational", f"{written.resource_type}/{written.id} {what}")])
        return fhir_response(orjson.dumps(outcome), written.status, headers)
    return fhir_response(written.json, written.status, headers)
