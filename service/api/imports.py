"""Bulk import: `POST /api/v1/import/{kind}` with an NDJSON (`application/x-ndjson`) or CSV
(`text/csv`) body; every row is written in its own transaction; returns the per-row report."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request
from starlette.responses import Response

from .offload import in_thread
from ..usecases import import_rows, parse_rows
from ..usecases.records import record_kind
from .deps import ServicesDep, json_response
from .limits import CSV_TYPES, NDJSON_TYPES, require_media_type
from .problems import ApiError, problem_responses
from .schemas import ImportReportDoc
from ..auth.roles import Action
from .security import door, tenant

router = APIRouter(dependencies=[Depends(door(Action.DOMAIN_WRITE))])

IMPORT_BODY = {
    "requestBody": {
        "required": True,
        "description": "NDJSON: one record (JSON object) per line. CSV: a header row; dotted columns are nested "
        "fields (answers.9, address.city), list fields take ';'-separated values, an empty cell is absent.",
        "content": {
            "application/x-ndjson": {"schema": {"type": "string"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}


@router.post(
    "/import/{kind}",
    operation_id="import_records",
    tags=["import"],
    summary="Import many records of one kind (NDJSON or CSV); each row is its own transaction",
    response_model=ImportReportDoc,
    responses=problem_responses(400, 404, 413, 415),
    openapi_extra=IMPORT_BODY,
)
async def import_records(
    request: Request, kind: Annotated[str, Path(description="Record kind, e.g. patients")], services: ServicesDep
) -> Response:
    record_kind(kind)
    found = require_media_type(request, NDJSON_TYPES + CSV_TYPES)
    body = await request.body()
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ApiError(400, "bad-encoding", "the import body must be UTF-8 text") from None
    fmt = "csv" if found in CSV_TYPES else "ndjson"
    rows = list(parse_rows(text, fmt, kind))
    for row in rows:  # tenancy first: one row for another clinic refuses the whole import (403)
        if row.payload is not None:
            requested = row.payload.get("clinic_id")
            clinic = tenant(request, requested if isinstance(requested, str) else None, required=False)
            if "clinic_id" not in row.payload and clinic is not None:
                row.payload["clinic_id"] = clinic
    report = await in_thread(lambda: import_rows(services.uow_factory, kind, iter(rows)))
    return json_response(report.document())
