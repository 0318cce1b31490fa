"""The audit trail on the HTTP side:

- `AuditMiddleware` records one AuditEvent (service/store/audit.py) for every request to the
  FHIR API and the /api/v1 APIs (patient data reads and writes, coverage, sync admin, audit
  queries themselves), whatever its outcome: 2xx/3xx -> 0, 4xx -> 4 (refused / invalid),
  5xx -> 8. Who: the token's `sub` (+ client id, issuer); from where: the client address; what:
  the FHIR resources the request read or wrote (collected by the FHIR access hook), the
  resource in the URL or the `Location` of a created one, domain record keys and the patient.
  Never query strings, bodies or token contents. Payer submissions (eligibility, PAS submit /
  inquire) are recorded as transmissions (DICOM 110106 Export).
- `GET /fhir/AuditEvent` (params `patient`, `date` with prefixes, `outcome`, `_count`,
  `_cursor`) and `GET /fhir/AuditEvent/{id}`: administrators only (`audit.read`); a clinic
  admin sees the events of its clinic, an admin without clinic claim all of them.
- `GET /api/v1/audit/export`: the same events as NDJSON (oldest first); also
  `python -m service audit export`.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response, StreamingResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .offload import in_thread
from ..auth import Principal
from ..auth.roles import Action
from ..store.audit import AuditQuery, AuditRecord
from ..store.audit_buffer import BufferedAuditLog
from ..usecases.fhir_errors import FhirError
from ..usecases.fhir_search import parse_date_value
from .security import door, is_global_admin

log = logging.getLogger("service.audit")
FHIR_JSON = "application/fhir+json"

SUBTYPE_OF_OPERATION = {
    "fhir_read": ("R", "read"), "fhir_vread": ("R", "vread"), "fhir_history_instance": ("R", "history-instance"),
    "fhir_history_type": ("R", "history-type"), "fhir_search": ("E", "search-type"),
    "fhir_search_post": ("E", "search-type"), "fhir_create": ("C", "create"), "fhir_update": ("U", "update"),
    "fhir_update_conditional": ("U", "update"), "fhir_delete": ("D", "delete"),
    "fhir_transaction": ("E", "transaction"), "fhir_patient_everything": ("E", "operation"),
    "fhir_validate": ("E", "operation"), "audit_search": ("E", "search-type"), "audit_read": ("R", "read"),
}
OUTBOUND_OPERATIONS = {"coverage_eligibility", "coverage_prior_auth_submit", "coverage_prior_auth_inquire"}
UNAUDITED = ("/fhir/metadata", "/fhir/.well-known/")


def audit_log(app: Any) -> BufferedAuditLog:
    """The app's audit log (the services' one): events are group-committed by a writer thread
    (store/audit_buffer.py) and written out when the app shuts down (`install_audit_shutdown`)."""
    return app.state.services.audit_log


def install_audit_shutdown(app: Any) -> None:
    """Wrap the app's lifespan: on shutdown, write the buffered audit events (later requests,
    e.g. a test client used again, are written synchronously)."""
    previous = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(app_: Any) -> AsyncIterator[Any]:
        async with previous(app_) as state:
            try:
                yield state
            finally:
                await in_thread(audit_log(app).flush)

    app.router.lifespan_context = lifespan


def _audited(path: str) -> bool:
    if path.startswith(UNAUDITED):
        return False
    return path == "/fhir" or path.startswith("/fhir/") or path.startswith("/api/v1/")


def _outcome(status: int) -> str:
    return "0" if status < 400 else ("4" if status < 500 else "8")


def build_record(scope: Scope, status: int, location: str | None) -> AuditRecord:
    state = scope.get("state") or {}
    principal: Principal | None = state.get("principal")
    route = scope.get("route")
    operation = getattr(route, "operation_id", None) or ""
    params: dict[str, Any] = scope.get("path_params") or {}
    method = scope.get("method", "GET")
    path: str = scope.get("path", "")
    action, subtype = SUBTYPE_OF_OPERATION.get(operation, ("", ""))
    if not action:
        if method == "GET":
            action, subtype = ("R", "read") if params.get("key") or params.get("request_id") or params.get("packet_id") else ("E", "search-type")
        elif method == "PUT":
            action, subtype = "U", "update"
        elif method == "DELETE":
            action, subtype = "D", "delete"
        elif path.endswith("$preview") or operation in OUTBOUND_OPERATIONS:
            action, subtype = "E", "operation"
        else:
            action, subtype = "C", "create"
    record = AuditRecord(action=action, outcome=_outcome(status), subtype=subtype)
    if principal is not None:
        record.agent_subject = principal.subject
        record.agent_client = principal.client_id
        record.agent_issuer = principal.issuer
        record.clinic_id = principal.clinic_id
        if principal.patient_id:
            record.patient_ids.append(principal.patient_id)
    client = scope.get("client")
    if client:
        record.address = str(client[0])
    access = state.get("fhir_access")
    if access is not None:
        for resource_type, resource_id, patient in access.touched:
            record.entities.append(f"{resource_type}/{resource_id}")
            if patient:
                record.patient_ids.append(patient)
    resource_type, resource_id = params.get("resource_type"), params.get("resource_id")
    if operation == "fhir_patient_everything":
        resource_type = "Patient"
    if isinstance(resource_type, str) and isinstance(resource_id, str) and len(resource_id) <= 64 and resource_type.isalpha():
        record.entities.insert(0, f"{resource_type}/{resource_id}")
        if resource_type == "Patient":
            record.patient_ids.insert(0, resource_id)
    if location and path.startswith("/fhir"):
        marker = "/fhir/"
        tail = location.split(marker, 1)[1] if marker in location else ""
        if tail:
            record.entities.append(tail.split("/_history/")[0])
    if path.startswith("/api/v1/"):
        parts = path[len("/api/v1/"):].split("/")
        clinic = params.get("clinic_id") or _query_value(scope, "clinic_id") or record.clinic_id or ""
        if params.get("key"):
            record.records.append(f"{parts[0]}/{clinic}/{params['key']}")
        elif params.get("request_id"):
            record.records.append(f"prior-auth/{params['request_id']}")
        elif params.get("packet_id"):
            record.entities.append(f"DocumentReference/{str(params['packet_id'])[:64]}")
        patient = params.get("patient_id") or _query_value(scope, "patient_id")
        if patient:
            record.patient_ids.append(f"{clinic}/{patient}"[:64])
        if parts and parts[0] == "patients" and params.get("key"):
            record.patient_ids.append(f"{clinic}/{params['key']}"[:64])
    if operation in OUTBOUND_OPERATIONS:
        record.outbound_to = "payer"
        record.subtype = "payer-" + operation.rsplit("_", 1)[-1]
    record.entities = list(dict.fromkeys(record.entities))
    record.patient_ids = list(dict.fromkeys(record.patient_ids))
    return record


def _query_value(scope: Scope, name: str) -> str | None:
    from urllib.parse import parse_qsl

    raw = scope.get("query_string", b"").decode("latin-1")
    for key, value in parse_qsl(raw):
        if key == name and 0 < len(value) <= 64:
            return value
    return None


class AuditMiddleware:
    """Records the AuditEvent of each audited request once its response has been sent."""

    def __init__(self, app: ASGIApp, fastapi_app: Any) -> None:
        self.app = app
        self.fastapi_app = fastapi_app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _audited(scope.get("path", "")):
            await self.app(scope, receive, send)
            return
        status = 500
        location: str | None = None

        async def watching_send(message: Message) -> None:
            nonlocal status, location
            if message["type"] == "http.response.start":
                status = message["status"]
                for key, value in message.get("headers") or []:
                    if key.lower() == b"location":
                        location = value.decode("latin-1")
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        finally:
            try:
                record = build_record(scope, status, location)
                buffered = audit_log(self.fastapi_app)
                if not buffered.submit(record):  # buffer full (database down?) or shutting down
                    await in_thread(buffered.append, [record])
            except Exception:  # noqa: BLE001 - never let auditing break the response path; log the type only
                import sys

                log.error("could not record an audit event (%s)", type(sys.exc_info()[1]).__name__)


# --------------------------------------------------------------------------- queries

audit_fhir_router = APIRouter(tags=["FHIR"])
audit_export_router = APIRouter(tags=["audit"])
AuditReader = Annotated[Principal, Depends(door(Action.AUDIT_READ))]
AUDIT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "A Bundle of AuditEvents", "content": {FHIR_JSON: {"schema": {"type": "object"}}}},
    400: {"description": "Bad request (OperationOutcome)", "content": {FHIR_JSON: {"schema": {"type": "object"}}}},
    404: {"description": "Not found (OperationOutcome)", "content": {FHIR_JSON: {"schema": {"type": "object"}}}},
}


def _query(principal: Principal, patient: str | None, date: list[str], outcome: str | None, count: int,
           cursor: str | None) -> AuditQuery:
    since = until = None
    for value in date:
        match = parse_date_value(value, "date")
        if match.prefix in ("ge", "gt", "sa"):
            since = match.start if match.prefix == "ge" else match.end
        elif match.prefix in ("le", "lt", "eb"):
            until = match.end if match.prefix == "le" else match.start
        elif match.prefix == "eq":
            since, until = match.start, match.end
        else:
            raise FhirError.of(400, "date takes the prefixes eq, ge, gt, le, lt here", "not-supported")
    outcomes: tuple[str, ...] = ()
    if outcome:
        outcomes = tuple(o.strip() for o in outcome.split(","))
        if any(o not in ("0", "4", "8", "12") for o in outcomes):
            raise FhirError.of(400, "outcome is one of 0, 4, 8, 12", "invalid")
    after = None
    if cursor:
        try:
            stamp, last = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            after = (dt.datetime.fromisoformat(stamp), str(last))
        except Exception:  # noqa: BLE001 - any malformed cursor is the client's error
            raise FhirError.of(400, "_cursor is not an AuditEvent paging cursor of this server", "invalid") from None
    clinic = None if is_global_admin(principal) else principal.clinic_id
    return AuditQuery(patient=patient.removeprefix("Patient/") if patient else None, clinic_id=clinic,
                      outcome=outcomes, since=since, until=until, limit=count, after=after)


@audit_fhir_router.get("/AuditEvent", operation_id="audit_search", summary="Search AuditEvents (administrators)",
                       response_class=Response, responses=AUDIT_RESPONSES)
async def search_audit(
    request: Request,
    principal: AuditReader,
    patient: Annotated[str | None, Query(max_length=80, description="Patient/id or id (FHIR), or clinic/key (domain)")] = None,
    date: Annotated[list[str], Query(description="recorded: eq, ge, gt, le, lt prefixes (repeatable)")] = [],  # noqa: B006
    outcome: Annotated[str | None, Query(max_length=20, description="0, 4, 8 or 12 (comma-separated)")] = None,
    count: Annotated[int, Query(alias="_count", ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(alias="_cursor", max_length=200)] = None,
) -> Response:
    query = _query(principal, patient, date, outcome, count, cursor)
    log_ = audit_log(request.app)
    rows, more = await in_thread(log_.search, query)
    total = await in_thread(log_.count, AuditQuery(query.patient, query.clinic_id, query.outcome, query.since, query.until))
    base = str(request.base_url).rstrip("/") + "/fhir"
    self_link = str(request.url)
    links = [{"relation": "self", "url": self_link}]
    if more and rows:
        token = base64.urlsafe_b64encode(orjson.dumps([rows[-1][0].isoformat(), rows[-1][1]])).decode().rstrip("=")
        params = [(k, v) for k, v in request.query_params.multi_items() if k != "_cursor"] + [("_cursor", token)]
        from urllib.parse import urlencode

        links.append({"relation": "next", "url": f"{base}/AuditEvent?{urlencode(params)}"})
    entries = b",".join(
        b'{"fullUrl":' + orjson.dumps(f"{base}/AuditEvent/{event_id}") + b',"resource":' + bytes(body)
        + b',"search":{"mode":"match"}}'
        for _, event_id, body in rows
    )
    head = orjson.dumps({"resourceType": "Bundle", "type": "searchset", "total": total, "link": links})
    document = head[:-1] + b',"entry":[' + entries + b"]}"
    return Response(document, media_type=FHIR_JSON)


@audit_fhir_router.get("/AuditEvent/{event_id}", operation_id="audit_read", summary="One AuditEvent (administrators)",
                       response_class=Response, responses=AUDIT_RESPONSES)
async def read_audit(request: Request, event_id: str, principal: AuditReader) -> Response:
    found = await in_thread(audit_log(request.app).read, event_id[:64])
    if found is None or not (is_global_admin(principal) or found[0] == principal.clinic_id):
        raise FhirError.of(404, "AuditEvent not found", "not-found")
    return Response(bytes(found[1]), media_type=FHIR_JSON)


@audit_export_router.get(
    "/audit/export", operation_id="audit_export", summary="Export AuditEvents as NDJSON (administrators)",
    response_class=Response,
    responses={200: {"description": "One AuditEvent per line", "content": {"application/fhir+ndjson": {"schema": {"type": "string"}}}}},
)
async def export_audit(
    request: Request,
    principal: AuditReader,
    patient: Annotated[str | None, Query(max_length=80)] = None,
    since: Annotated[dt.datetime | None, Query(description="Only events recorded at or after this instant")] = None,
) -> Response:
    clinic = None if is_global_admin(principal) else principal.clinic_id
    query = AuditQuery(patient=patient.removeprefix("Patient/") if patient else None, clinic_id=clinic,
                       since=since.replace(tzinfo=since.tzinfo or dt.timezone.utc) if since else None)
    lines = await in_thread(lambda: [line + b"\n" for line in audit_log(request.app).export(query)])
    return StreamingResponse(iter(lines), media_type="application/fhir+ndjson")
