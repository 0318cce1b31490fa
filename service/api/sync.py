"""Sync administration and visibility: targets (secrets write-only), per-item status,
metrics (JSON here, Prometheus text at /metrics), dead-letter replay, backfill, inbound pull."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from starlette.responses import PlainTextResponse, Response

from .offload import in_thread
from ..store.sync_repository import STATUSES, StatusQuery, SyncStore
from ..sync.admin import SyncAdmin
from ..sync.errors import PermanentError, TemporaryError
from ..sync.pull import PullError
from ..sync.settings import SyncSettings
from ..sync.targets import TargetConfigError
from .deps import ServicesDep, json_response
from .problems import ApiError, problem_responses
from ..auth.errors import forbidden
from ..auth.roles import Action
from .security import door, is_global_admin, principal_of, tenant

router = APIRouter(tags=["sync"], dependencies=[Depends(door(Action.SYNC_ADMIN))])
metrics_router = APIRouter(tags=["sync"], dependencies=[Depends(door(Action.SYNC_ADMIN))])


async def global_admin(request: Request) -> None:
    """Targets are deployment-wide (every clinic's data flows through them): only an admin
    token without a clinic claim may change them."""
    if not is_global_admin(principal_of(request)):
        raise forbidden("global_admin_required", "Changing sync targets needs an admin token without a clinic claim.")


GLOBAL = [Depends(global_admin)]
NAME_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"


def _admin(request: Request, services: Any) -> SyncAdmin:
    admin = getattr(request.app.state, "sync_admin", None)
    if admin is None:
        admin = SyncAdmin(SyncStore(services.engine, services.clock), SyncSettings())
        request.app.state.sync_admin = admin
    return admin


def _check_target_payload(payload: dict[str, Any]) -> None:
    """Field types the target code relies on (a wrong type is a 422, never a 500)."""
    for field in ("auth", "base_url", "id_policy", "username", "token", "password", "private_key", "name"):
        if field in payload and payload[field] is not None and not isinstance(payload[field], str):
            raise ApiError(422, "sync-target", f"{field} must be a string")


async def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return await in_thread(fn, *args, **kwargs)
    except TargetConfigError as error:
        status = 404 if str(error).startswith("no sync target") else 422
        raise ApiError(status, "sync-target", str(error)) from None
    except PullError as error:
        raise ApiError(404 if "no Patient" in str(error) else 422, "sync-pull", str(error)) from None
    except (TemporaryError, PermanentError) as error:
        raise ApiError(502, "sync-target-unavailable", f"the EHR answered: {error.message}") from None


@router.get("/sync/targets", operation_id="list_sync_targets", summary="Configured EHR targets (no secrets)",
            response_model=list[dict[str, Any]])
async def list_targets(request: Request, services: ServicesDep) -> Response:
    return json_response(await _call(_admin(request, services).targets))


@router.get("/sync/targets/{name}", operation_id="get_sync_target", summary="One EHR target (no secrets)",
            response_model=dict[str, Any], responses=problem_responses(404))
async def get_target(name: Annotated[str, Path(pattern=NAME_PATTERN)], request: Request, services: ServicesDep) -> Response:
    return json_response(await _call(_admin(request, services).target, name))


@router.put("/sync/targets/{name}", operation_id="put_sync_target",
            summary="Create or replace an EHR target; token/password/private_key are write-only",
            response_model=dict[str, Any], responses=problem_responses(422), dependencies=GLOBAL)
async def put_target(
    name: Annotated[str, Path(pattern=NAME_PATTERN)], payload: Annotated[dict[str, Any], Body()], request: Request,
    services: ServicesDep,
) -> Response:
    _check_target_payload(payload)
    return json_response(await _call(_admin(request, services).put_target, name, payload))


@router.post("/sync/targets", operation_id="create_sync_target", summary="Create an EHR target (body has its name)",
             response_model=dict[str, Any], status_code=201, responses=problem_responses(409, 422), dependencies=GLOBAL)
async def create_target(payload: Annotated[dict[str, Any], Body()], request: Request, services: ServicesDep) -> Response:
    _check_target_payload(payload)
    name = str(payload.get("name") or "")
    admin = _admin(request, services)
    if await in_thread(admin.store.get_target, name) is not None:
        raise ApiError(409, "sync-target", f"target {name!r} exists; PUT /sync/targets/{name} replaces it")
    return json_response(await _call(admin.put_target, name, payload), 201)


@router.delete("/sync/targets/{name}", operation_id="delete_sync_target", summary="Remove a stored EHR target",
               status_code=204, responses=problem_responses(404), dependencies=GLOBAL)
async def delete_target(name: Annotated[str, Path(pattern=NAME_PATTERN)], request: Request, services: ServicesDep) -> Response:
    if not await _call(_admin(request, services).delete_target, name):
        raise ApiError(404, "sync-target", f"no stored sync target named {name!r}")
    return Response(status_code=204)


@router.get("/sync/status", operation_id="sync_status",
            summary="Where each resource stands per target (pending, sent with the target's id, retrying, dead)",
            response_model=dict[str, Any], responses=problem_responses(422))
async def sync_status(
    request: Request,
    services: ServicesDep,
    target: str | None = None,
    resource_type: str | None = None,
    resource_id: str | None = None,
    record_kind: str | None = None,
    record_key: str | None = None,
    clinic_id: str | None = None,
    patient_id: str | None = None,
    status: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    if status is not None and status not in STATUSES:
        raise ApiError(422, "sync-status", f"status must be one of {', '.join(STATUSES)}")
    clinic_id = tenant(request, clinic_id, required=False)
    query = StatusQuery(target, resource_type, resource_id, status, clinic_id, patient_id, record_kind, record_key, limit, offset)
    return json_response(await _call(_admin(request, services).status, query))


@router.get("/sync/metrics", operation_id="sync_metrics", summary="Sync counters and per-status counts per target",
            response_model=dict[str, Any])
async def sync_metrics(request: Request, services: ServicesDep) -> Response:
    return json_response(await _call(_admin(request, services).metrics))


@router.post("/sync/replay", operation_id="sync_replay",
             summary="Replay dead letters of a target (all, or one resource and what waited on it)",
             response_model=dict[str, Any], responses=problem_responses(404, 422), dependencies=GLOBAL)
async def sync_replay(payload: Annotated[dict[str, Any], Body()], request: Request, services: ServicesDep) -> Response:
    target = payload.get("target")
    if not isinstance(target, str):
        raise ApiError(422, "sync-replay", "target is required")
    count = await _call(_admin(request, services).replay, target, payload.get("resource"))
    return json_response({"target": target, "replayed": count})


@router.post("/sync/pull", operation_id="sync_pull",
             summary="Import a patient's Patient, Coverage, Condition and medication history from an EHR",
             response_model=dict[str, Any], responses=problem_responses(404, 422, 502))
async def sync_pull(payload: Annotated[dict[str, Any], Body()], request: Request, services: ServicesDep) -> Response:
    target, identifier = payload.get("target"), payload.get("identifier")
    if not isinstance(target, str) or not isinstance(identifier, str):
        raise ApiError(422, "sync-pull", "target and identifier (system|value) are required")
    requested = payload.get("clinic_id")
    clinic = tenant(request, requested if isinstance(requested, str) else None)
    report = await _call(_admin(request, services).pull, target, identifier, clinic)
    return json_response(report.document())


@metrics_router.get("/metrics", operation_id="prometheus_metrics", summary="Prometheus text metrics (sync)",
                    response_class=PlainTextResponse)
async def prometheus(request: Request, services: ServicesDep) -> Response:
    text = await _call(_admin(request, services).prometheus)
    return PlainTextResponse(text, media_type="text/plain; version=0.0.4")
