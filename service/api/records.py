"""Domain REST API for every record kind, generated in a loop over RECORD_KINDS:

    PUT  /api/v1/{kind}/{key}          create or update by business key
    POST /api/v1/{kind}                create (id in body); honours Idempotency-Key
    GET  /api/v1/{kind}/{key}          read (clinic_id query, except for clinics)
    GET  /api/v1/{kind}                list (clinic_id, patient_id, limit, cursor)
    POST /api/v1/{kind}/$preview       the FHIR resources a payload would produce (not stored)

Each route's request body is the kind's domain model in OpenAPI (#/components/schemas/<Model>);
the handler reads the JSON itself so that size, content type and syntax errors become the
right problem documents. Operation ids: put_<kind>, create_<kind>, get_<kind>, list_<kind>,
preview_<kind> (kind in snake case).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from starlette.responses import Response

from .offload import in_pool, in_thread, write_pool
from ..domain.records import RECORD_KINDS, RecordKind
from ..usecases import PutMode, WriteStatus, get_record, list_records, preview_fhir, put_record
from ..auth.roles import Action
from .deps import json_response, services_of
from .limits import read_json_object
from .problems import problem_responses
from .routing import GatedRouter
from .security import door, door_any, tenant

PSYCHOTHERAPY_KINDS = frozenset({"integration-sessions"})
"""Kinds whose reading needs `domain.psychotherapy.read` on top of `domain.read`."""
BILLING_READABLE_KINDS = frozenset({"clinics", "practitioners", "locations", "patients", "enrollments", "coverages"})
"""Kinds billing staff (`coverage.read`) may read too: who, where, enrolled in what, insured how -
what a claim or prior authorization names. Never clinical detail or psychotherapy."""
from .schemas import PreviewBundle, RecordList, RecordRead, RecordWritten

KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9\-._]{0,63}$"
DEFAULT_PAGE = 50
MAX_PAGE = 500

KeyPath = Annotated[str, Path(description="The record's business key", pattern=KEY_PATTERN)]
ClinicQuery = Annotated[
    str | None,
    Query(description="The owning clinic: defaults to the token's clinic; another clinic is refused (403). "
          "Required only for admin tokens without a clinic claim.", pattern=KEY_PATTERN),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="Makes a retried POST safe: the same key and body return the first response; "
        "the same key with another body is a 409",
    ),
]


def snake(kind: str) -> str:
    return kind.replace("-", "_")


def body_spec(spec: RecordKind, *, id_optional: bool = False) -> dict[str, Any]:
    description = f"{spec.model.__name__}: {spec.description}."
    if id_optional:
        description += " `id` may be omitted; when present it must equal the key in the URL."
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{spec.model.__name__}"}}},
        }
    }


def _written(result: Any, created_status: int = 201) -> Response:
    status = created_status if result.status is WriteStatus.CREATED else 200
    response = json_response(result.document(), status)
    if result.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


async def put_one_response(request: Request, kind: str, key: str) -> Response:
    """`PUT /api/v1/<kind>/<key>` once the door has let the request in: create or update by
    business key. The route and the write lane (service/api/write_lane.py) both answer with it."""
    services = services_of(request)
    payload = _tenanted(request, await read_json_object(request), kind, key)
    result = await in_pool(
        write_pool(services.settings.write_concurrency), put_record, services.uow(), kind, payload, None,
        mode=PutMode.UPSERT, key=key, outcome_rules=services.summary_rules.outcome,
    )
    return _written(result)


def _add_kind_routes(router: APIRouter, spec: RecordKind) -> None:
    kind, name = spec.name, snake(spec.name)
    tag = kind

    async def put_one(request: Request, key: KeyPath) -> Response:
        return await put_one_response(request, kind, key)

    async def create_one(request: Request, idempotency_key: IdempotencyKey = None) -> Response:
        services = services_of(request)
        payload = _tenanted(request, await read_json_object(request), kind, None)
        result = await in_pool(
            write_pool(services.settings.write_concurrency), put_record, services.uow(), kind, payload,
            idempotency_key, mode=PutMode.CREATE, outcome_rules=services.summary_rules.outcome,
        )
        return _written(result)

    async def get_one(request: Request, key: KeyPath, clinic_id: ClinicQuery = None) -> Response:
        services = services_of(request)
        clinic = tenant(request, clinic_id if clinic_id is not None or kind != "clinics" else key, required=False)
        view = await in_thread(get_record, services.uow(), kind, key, clinic)
        return json_response(view.document())

    async def list_many(
        request: Request,
        clinic_id: ClinicQuery = None,
        patient_id: Annotated[str | None, Query(description="Only this patient's records", pattern=KEY_PATTERN)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Page size")] = DEFAULT_PAGE,
        cursor: Annotated[str | None, Query(max_length=400, description="next_cursor of the previous page")] = None,
    ) -> Response:
        clinic = tenant(request, clinic_id, required=False)
        services = services_of(request)
        page = await in_thread(
            list_records, services.uow(), kind, clinic_id=clinic, patient_id=patient_id, limit=limit, cursor=cursor
        )
        return json_response(page.document())

    async def preview(request: Request) -> Response:
        services = services_of(request)
        payload = _tenanted(request, await read_json_object(request), kind, None)
        resources = await in_thread(preview_fhir, kind, payload, None, services.uow_factory)
        bundle = {
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} for r in resources],
        }
        return json_response(bundle)

    errors = problem_responses(400, 409, 413, 415, 422, 501)
    write = [Depends(door(Action.DOMAIN_WRITE))]
    read = [Depends(door_any(Action.DOMAIN_READ, Action.COVERAGE_READ) if kind in BILLING_READABLE_KINDS
                    else door(Action.DOMAIN_READ))]
    if kind in PSYCHOTHERAPY_KINDS:
        read.append(Depends(door(Action.PSYCHOTHERAPY_READ)))
    router.add_api_route(
        f"/{kind}/{{key}}", put_one, methods=["PUT"], operation_id=f"put_{name}", tags=[tag],
        summary=f"Create or update a {spec.model.__name__} by business key",
        response_model=RecordWritten, responses={201: {"model": RecordWritten, "description": "Created"}, **errors},
        openapi_extra=body_spec(spec, id_optional=True), dependencies=write,
    )
    router.add_api_route(
        f"/{kind}", create_one, methods=["POST"], operation_id=f"create_{name}", tags=[tag],
        summary=f"Create a {spec.model.__name__} (200 when it already exists unchanged)",
        status_code=201, response_model=RecordWritten,
        responses={200: {"model": RecordWritten, "description": "Already existed with this content"}, **errors},
        openapi_extra=body_spec(spec), dependencies=write,
    )
    router.add_api_route(
        f"/{kind}/$preview", preview, methods=["POST"], operation_id=f"preview_{name}", tags=[tag],
        summary=f"The FHIR resources a {spec.model.__name__} would produce (nothing is stored)",
        response_model=PreviewBundle, responses=problem_responses(400, 413, 415, 422, 501),
        openapi_extra=body_spec(spec), dependencies=write,
    )
    router.add_api_route(
        f"/{kind}/{{key}}", get_one, methods=["GET"], operation_id=f"get_{name}", tags=[tag],
        summary=f"Read a {spec.model.__name__}", response_model=RecordRead, responses=problem_responses(404, 422),
        dependencies=read,
    )
    router.add_api_route(
        f"/{kind}", list_many, methods=["GET"], operation_id=f"list_{name}", tags=[tag],
        summary=f"List {kind} records", response_model=RecordList, responses=problem_responses(404, 422),
        dependencies=read,
    )


def _tenanted(request: Request, payload: dict, kind: str, key: str | None) -> dict:
    """The payload's clinic must be the token's (403 otherwise); a missing `clinic_id` is the
    token's clinic."""
    requested = payload.get("clinic_id")
    if kind == "clinics" and requested is None:
        requested = payload.get("id", key)
    if requested is not None and not isinstance(requested, str):
        return payload  # the model validation answers 422
    clinic = tenant(request, requested, required=False)
    if "clinic_id" not in payload and clinic is not None:
        payload = {**payload, "clinic_id": clinic}
    return payload


def kind_routers(prefix: str) -> list[APIRouter]:
    """Every kind's routes, one gated router per kind (service/api/routing.py), to be included
    in the app itself with `prefix`: one level of routers, so a request is matched against
    the kinds' gates and then its own kind's five routes only (an intermediate router holding
    them all would be matched, and walked, once more)."""
    routers = []
    for spec in RECORD_KINDS.values():
        kind_router = GatedRouter(gate=f"{prefix}/{spec.name}")
        _add_kind_routes(kind_router, spec)
        routers.append(kind_router)
    return routers
