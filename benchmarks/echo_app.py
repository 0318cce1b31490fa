"""A bare FastAPI JSON echo endpoint: the baseline the API benchmark compares against."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import Response


def create_app() -> FastAPI:
    app = FastAPI()

    @app.put("/echo/{key}")
    async def echo(key: str, request: Request) -> Response:
        return Response(await request.body(), media_type="application/json")

    return app
