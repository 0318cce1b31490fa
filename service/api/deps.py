"""Typed dependencies shared by the routers."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import Depends, Request
from starlette.responses import Response

from ..usecases import Services


async def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


def services_of(request: Request) -> Services:
    """The app's services, read directly: what `ServicesDep` gives, without a dependency for
    FastAPI to solve on every request (the record routes, the busiest, use this)."""
    return request.app.state.services


def json_response(document: object, status: int = 200) -> Response:
    return Response(orjson.dumps(document), status_code=status, media_type="application/json")
