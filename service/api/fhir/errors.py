"""Every FHIR error as an OperationOutcome: `FhirError` from the use cases, plus a middleware
that turns the app's generic problem documents (unknown route 404, 405, 413 body too large,
the catch-all 500) under /fhir into OperationOutcomes with the same status. The 500 text
says nothing about the cause (it may involve PHI); the log has the incident id."""

from __future__ import annotations

import orjson
from fastapi import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ...usecases.fhir_errors import FhirError, OutcomeIssue, operation_outcome
from .common import CONTENT_TYPE

PREFIX = "/fhir"
ISSUE_CODE = {400: "invalid", 404: "not-found", 405: "not-supported", 406: "not-supported", 409: "conflict",
              410: "deleted", 412: "conflict", 413: "too-costly", 415: "not-supported", 422: "invalid", 500: "exception"}


async def fhir_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, FhirError)
    return Response(orjson.dumps(exc.outcome()), status_code=exc.status, media_type=CONTENT_TYPE, headers=exc.headers or None)


def _outcome_of_problem(status: int, body: bytes) -> bytes:
    try:
        problem = orjson.loads(body)
    except orjson.JSONDecodeError:
        problem = {}
    detail = problem.get("detail") if isinstance(problem, dict) else None
    if status >= 500:
        detail = "an unexpected error occurred; it has been logged" + (
            f" ({problem.get('instance')})" if isinstance(problem, dict) and problem.get("instance") else ""
        )
    issues = [OutcomeIssue("error", ISSUE_CODE.get(status, "processing"), str(detail or problem.get("title") or status))]
    for error in problem.get("errors", []) if isinstance(problem, dict) else []:
        if isinstance(error, dict) and error.get("message"):
            issues.append(OutcomeIssue("error", ISSUE_CODE.get(status, "processing"), f"{error.get('field') or ''}: {error['message']}".strip(": ")))
    return orjson.dumps(operation_outcome(issues))


class OutcomeMiddleware:
    """Rewrites `application/problem+json` responses under /fhir as OperationOutcomes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path != PREFIX and not path.startswith(PREFIX + "/"):
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def converting_send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = dict(message.get("headers") or [])
                if headers.get(b"content-type", b"").startswith(b"application/problem+json"):
                    start = message
                    return
                await send(message)
            elif message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body"):
                    return
                status = start["status"]
                body = _outcome_of_problem(status, b"".join(chunks))
                headers = [(k, v) for k, v in start.get("headers", []) if k.lower() not in (b"content-type", b"content-length")]
                headers += [(b"content-type", CONTENT_TYPE.encode()), (b"content-length", str(len(body)).encode())]
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
            else:
                await send(message)

        await self.app(scope, receive, converting_send)
