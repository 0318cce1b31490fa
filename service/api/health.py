"""Liveness and database reachability."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from .offload import in_thread
from .deps import ServicesDep, json_response
from .schemas import Health

router = APIRouter()


@router.get("/health", operation_id="health", tags=["health"], response_model=Health, summary="Service health")
async def health(services: ServicesDep) -> Response:
    ok = await in_thread(services.database_ok)
    return json_response({"status": "ok" if ok else "degraded", "database": "ok" if ok else "unavailable"}, 200 if ok else 503)
