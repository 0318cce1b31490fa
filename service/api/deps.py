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


def json_response(document: object, status: int = 200) -> Response:
    return Response(orjson.dumps(document), status_code=status, media_type="application/json")
