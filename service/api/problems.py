"""Every error as an RFC 9457 problem document (`application/problem+json`), in one place.

    {"type": ".../problems/invalid-record", "title": "...", "status": 422, "detail": "...",
     "instance": "/api/v1/patients", "errors": [{"field": "answers.9", "message": "..."}]}

Use-case errors, request validation errors (with FastAPI's "body"/"query" prefixes removed),
HTTP errors (404 unknown route or kind, 405, 413, 415) and, as a last resort, any unexpected
exception (500, logged by type and route only: messages may contain PHI, so they are never
logged or returned).
"""

from __future__ import annotations

import logging
import traceback
import uuid
from http import HTTPStatus
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..usecases import FieldError, UseCaseError, field_errors
from ..usecases.errors import (
    Conflict,
    IdempotencyConflict,
    InvalidRecord,
    MappingUnavailable,
    MissingReference,
    NotFound,
    UnknownCodeError,
)

PROBLEM_BASE = "https://ketamine-interop.example.org/problems/"
PROBLEM_MEDIA_TYPE = "application/problem+json"
logger = logging.getLogger("service.api")


class FieldProblem(BaseModel):
    field: str = Field(description="Dotted path of the offending field, e.g. answers.9 ('' = the whole document)")
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldProblem] = Field(default_factory=list)


PROBLEM_RESPONSE = {"model": Problem, "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def problem_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {**PROBLEM_RESPONSE, "description": HTTPStatus(code).phrase} for code in codes}


class ApiError(Exception):
    """An HTTP-level error raised by the API layer itself (415, 400 malformed JSON, 413 ...)."""

    def __init__(self, status: int, kind: str, detail: str, errors: list[FieldError] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.kind = kind
        self.detail = detail
        self.errors = errors or []


class BodyTooLarge(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(413, "body-too-large", f"the request body is larger than {limit} bytes")


def problem(
    status: int,
    kind: str | None,
    detail: str | None,
    errors: list[FieldError] | None = None,
    *,
    title: str | None = None,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + kind if kind else "about:blank",
        "title": title or HTTPStatus(status).phrase,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body["errors"] = [e.as_dict() for e in errors or []]
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


STATUS_OF: list[tuple[type[UseCaseError], int]] = [
    (InvalidRecord, 422),
    (MissingReference, 422),
    (UnknownCodeError, 422),
    (NotFound, 404),
    (IdempotencyConflict, 409),
    (Conflict, 409),
    (MappingUnavailable, 501),
]


def status_of(error: UseCaseError) -> int:
    for cls, status in STATUS_OF:
        if isinstance(error, cls):
            return status
    return 400


async def _use_case_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, UseCaseError)
    return problem(status_of(exc), exc.kind, exc.detail, exc.errors, title=exc.title, instance=request.url.path)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return problem(exc.status, exc.kind, exc.detail, exc.errors, instance=request.url.path)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    raw = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in raw):
        return problem(400, "malformed-json", "the request body is not valid JSON", instance=request.url.path)
    errors = field_errors(raw)
    detail = "invalid request parameters: " + ", ".join(sorted({e.field for e in errors}))
    return problem(422, "invalid-request", detail, errors, instance=request.url.path)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else None
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no resource at {request.url.path} (unknown route or record kind)"
    kind = {404: "not-found", 405: "method-not-allowed"}.get(exc.status_code)
    return problem(exc.status_code, kind, detail, instance=request.url.path, headers=getattr(exc, "headers", None))


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(UseCaseError, _use_case_error)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(CatchAllMiddleware)


class CatchAllMiddleware:
    """Turns any unexpected exception into a 500 problem document. Logs the exception type,
    the route template and a traceback without the exception message (which may carry PHI);
    the incident id ties the response to the log line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:  # noqa: BLE001 - last resort by design
            incident = uuid.uuid4()
            route = getattr(scope.get("route"), "path", "(unmatched route)")
            logger.error(
                "unhandled %s in %s %s (incident %s)\n%s",
                type(exc).__name__, scope.get("method"), route, incident,
                "\n".join(f"  {frame.filename}:{frame.lineno} in {frame.name}" for frame in traceback.extract_tb(exc.__traceback__)),
            )
            if started:
                raise
            response = problem(
                500, "internal-error", "an unexpected error occurred; it has been logged",
                instance=f"urn:uuid:{incident}",
            )
            await response(scope, receive, send)
