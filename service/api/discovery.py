"""Public discovery endpoints (no token needed) and the dev-only token endpoint:

- `GET /.well-known/smart-configuration` and `GET /fhir/.well-known/smart-configuration`:
  SMART App Launch 2.x discovery (`service.auth.smart_configuration`).
- `GET /billing/dev-token?clinic_id=...`: ONLY when `AUTH_MODE=dev` (never in production, where
  dev mode is refused at start-up) and only to a loopback client: a short-lived billing token
  for the demo page, so `scripts/run-demo` works out of the box. Any other configuration: 404.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import JSONResponse, Response

from ..auth.smart_configuration import smart_configuration
from .problems import problem

router = APIRouter(tags=["discovery"])
dev_router = APIRouter(include_in_schema=False)
DEV_PAGE_LIFETIME = 3600
LOOPBACK_NAMES = {"localhost", "testclient"}


def _smart(request: Request) -> Response:
    return JSONResponse(smart_configuration(request.app.state.auth_settings), headers={"Cache-Control": "max-age=300"})


@router.get("/.well-known/smart-configuration", operation_id="smart_configuration", summary="SMART discovery document",
            response_model=dict[str, Any])
def smart_root(request: Request) -> Response:
    return _smart(request)


@router.get("/fhir/.well-known/smart-configuration", operation_id="fhir_smart_configuration",
            summary="SMART discovery document (under the FHIR base)", response_model=dict[str, Any])
def smart_fhir(request: Request) -> Response:
    return _smart(request)


def _loopback(request: Request) -> bool:
    host = request.client.host if request.client else ""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dev_router.get("/billing/dev-token")
def dev_token(request: Request, clinic_id: Annotated[str, Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9\-._]{0,63}$")]) -> Response:
    settings = request.app.state.auth_settings
    if settings.mode != "dev" or settings.is_production or not _loopback(request):
        return problem(404, "not-found", "no resource at this path")
    from ..auth.dev import mint_dev_token

    token = mint_dev_token("user/*.rs", clinic=clinic_id, roles=("billing",), lifetime=DEV_PAGE_LIFETIME,
                           settings=settings, subject="dev-billing-page")
    return JSONResponse({"access_token": token, "token_type": "Bearer", "expires_in": DEV_PAGE_LIFETIME},
                        headers={"Cache-Control": "no-store"})
