"""FHIR Bulk Data Access (IG v2) `$export`, asynchronous (service/usecases/fhir_export.py):

- kick-off `GET [base]/$export` and `GET [base]/Patient/$export` (`_type`, `_since`,
  `_outputFormat`), `Prefer: respond-async` required -> 202 + `Content-Location`;
- `GET [base]/$export-status/{job}` -> 202 (`X-Progress`, `Retry-After`) or 200 + manifest;
  `DELETE` cancels and removes the job (202);
- `GET [base]/$export-file/{job}/{Type}.ndjson` -> the NDJSON file (application/fhir+ndjson).

The scope of a job is the caller's: the clinic (and patient, for a patient-context token) of
the auth guard's `request.state.fhir_access`, else `common.clinic_header`; status, files and
cancel are 404 for another clinic's job. Output files are served by the FHIR router too (so
the same guard applies); `common.negotiate` lets `fhir_export_file` answer NDJSON.
The work runs in the app's `ExportRunner` thread (started with the app, resumes jobs left by
a dead process).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, AsyncIterator

import orjson
from fastapi import APIRouter, FastAPI, Request
from starlette.responses import FileResponse, Response

from ....store.fhir_export import ExportJobStore
from ....usecases.fhir_export import NDJSON, ExportRunner, cancel, export_status, kick_off, output_file
from ..common import FHIR_RESPONSES, base_url, clinic_header, fhir_response, prefer, query_items, run, services_of, strict
from ..registry import Operation, Registry

SYSTEM_DEFINITION = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"
PATIENT_DEFINITION = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"
BULK_DATA_CAPABILITY = "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data"
RUNNER = "fhir_export_runner"


def runner_of(app: FastAPI) -> ExportRunner:
    """The app's export runner (created and started on first use)."""
    runner = getattr(app.state, RUNNER, None)
    if runner is None:
        services = app.state.services
        runner = ExportRunner(ExportJobStore(services.engine, services.clock), Path(services.settings.export_dir),
                              clock=services.clock)
        setattr(app.state, RUNNER, runner)
    runner.start()
    return runner


def _scope(request: Request) -> tuple[str | None, str | None]:
    """(clinic, patient) the caller is confined to: the FHIR access the auth guard sets on
    `request.state.fhir_access` (token claims), else the `X-Clinic-Id` hook of common.py."""
    access = getattr(request.state, "fhir_access", None)
    if access is not None:
        return access.clinic_id, access.patient_id
    return clinic_header(request), None


def _requester(request: Request) -> str | None:
    access = getattr(request.state, "fhir_access", None)
    principal = getattr(request.state, "principal", None)
    return getattr(access, "subject", None) or getattr(principal, "subject", None)


async def _kick_off(request: Request, level: str) -> Response:
    runner = runner_of(request.app)
    clinic_id, patient_id = _scope(request)
    job_id = await run(
        kick_off, runner.store, str(request.url), level, query_items(request),
        respond_async=prefer(request, "respond-async") is not None, clinic_id=clinic_id, patient_id=patient_id,
        requester=_requester(request), strict=strict(request),
    )
    runner.wake()
    return Response(status_code=202, headers={"Content-Location": f"{base_url(request)}/$export-status/{job_id}"})


async def system_export(request: Request) -> Response:
    return await _kick_off(request, "system")


async def patient_export(request: Request) -> Response:
    return await _kick_off(request, "patient")


async def status(request: Request, job_id: str) -> Response:
    runner = runner_of(request.app)
    result = await run(export_status, runner.store, job_id, clinic_id=_scope(request)[0], base=base_url(request))
    if result.manifest is None:
        return Response(status_code=result.status, headers=result.headers)
    return Response(orjson.dumps(result.manifest), status_code=200, media_type="application/json", headers=result.headers)


async def delete(request: Request, job_id: str) -> Response:
    runner = runner_of(request.app)
    await run(cancel, runner.store, runner.export_dir, job_id, clinic_id=_scope(request)[0])
    return fhir_response(None, 202)


async def download(request: Request, job_id: str, file_name: str) -> Response:
    runner = runner_of(request.app)
    path = await run(output_file, runner.store, runner.export_dir, job_id, file_name, clinic_id=_scope(request)[0])
    return FileResponse(path, media_type=NDJSON)


KICK_OFF_DOC = {
    "parameters": [
        {"name": "Prefer", "in": "header", "required": True, "schema": {"type": "string", "enum": ["respond-async"]}},
        {"name": "_type", "in": "query", "required": False, "schema": {"type": "string"}, "description": "Comma-separated resource types"},
        {"name": "_since", "in": "query", "required": False, "schema": {"type": "string"}, "description": "FHIR instant"},
        {"name": "_outputFormat", "in": "query", "required": False, "schema": {"type": "string", "enum": [NDJSON]}},
    ],
    "responses": {"202": {"description": "Accepted; poll the Content-Location"}},
}


def register(router: APIRouter, registry: Registry) -> None:
    """Kick-off and status routes (before `/{resource_type}` and `/{resource_type}/{id}`)."""
    common = {"tags": ["FHIR"], "response_class": Response, "responses": FHIR_RESPONSES}
    router.add_api_route("/$export", system_export, methods=["GET"], operation_id="fhir_export",
                         summary="FHIR bulk $export (system level, async kick-off)", openapi_extra=KICK_OFF_DOC, **common)
    router.add_api_route("/Patient/$export", patient_export, methods=["GET"], operation_id="fhir_patient_export",
                         summary="FHIR bulk Patient/$export (async kick-off)", openapi_extra=KICK_OFF_DOC, **common)
    router.add_api_route("/$export-status/{job_id}", status, methods=["GET"], operation_id="fhir_export_status",
                         summary="FHIR bulk export status (202 while running, 200 + manifest)", **common)
    router.add_api_route("/$export-file/{job_id}/{file_name}", download, methods=["GET"], operation_id="fhir_export_file",
                         tags=["FHIR"], summary="A bulk export output file (application/fhir+ndjson; not negotiated)",
                         response_class=Response,
                         responses={200: {"description": "NDJSON", "content": {NDJSON: {"schema": {"type": "string"}}}}})
    router.add_api_route("/$export-status/{job_id}", delete, methods=["DELETE"], operation_id="fhir_export_cancel",
                         summary="Cancel and delete a bulk export", **common)
    registry.operation(Operation("export", SYSTEM_DEFINITION, (), "Bulk Data export of every resource (NDJSON, async)"))
    registry.operation(Operation("export", PATIENT_DEFINITION, ("Patient",), "Bulk Data export of the patient compartments"))
    registry.instantiate(BULK_DATA_CAPABILITY)


def install(app: FastAPI) -> None:
    """Start the runner with the app (it resumes jobs a dead process left) and stop it after:
    wraps the app's lifespan (whatever else it does stays as it was)."""
    previous = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        async with previous(app_) as state:
            runner_of(app)
            try:
                yield state
            finally:
                runner = getattr(app.state, RUNNER, None)
                if runner is not None:
                    await run(runner.stop)

    app.router.lifespan_context = lifespan
