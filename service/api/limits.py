"""Request body size limits (413) and content-type checks (415), before anything is parsed."""

from __future__ import annotations

from typing import Callable

import orjson
from fastapi import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..usecases import FieldError
from .problems import ApiError, BodyTooLarge, problem

JSON_TYPES = ("application/json",)
NDJSON_TYPES = ("application/x-ndjson", "application/ndjson", "application/jsonl")
CSV_TYPES = ("text/csv",)


class BodyLimitMiddleware:
    """Rejects bodies above the limit for their path: by Content-Length up front, and by
    counting streamed bytes otherwise (raises BodyTooLarge into the endpoint reading it)."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None:
            if not length.strip().isdigit():
                await problem(400, "bad-content-length", "Content-Length is not a number")(scope, receive, send)
                return
            if int(length) > limit:
                await problem(413, "body-too-large", f"the request body is larger than {limit} bytes")(scope, receive, send)
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, limited_receive, send)


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def require_media_type(request: Request, accepted: tuple[str, ...], *, json_suffix: bool = False) -> str:
    found = media_type(request)
    if found in accepted or (json_suffix and found.startswith("application/") and found.endswith("+json")):
        return found
    raise ApiError(
        415, "unsupported-media-type",
        f"Content-Type {found or '(none)'!r} is not accepted here; send {' or '.join(accepted)}",
        [FieldError("Content-Type", f"expected {' or '.join(accepted)}")],
    )


async def read_json_object(request: Request) -> dict:
    """The body as a JSON object: 415 for another content type, 400 for malformed JSON,
    422 when it is JSON but not an object."""
    require_media_type(request, JSON_TYPES, json_suffix=True)
    body = await request.body()
    if not body.strip():
        raise ApiError(400, "malformed-json", "the request body is empty; send a JSON object")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise ApiError(400, "malformed-json", f"the request body is not valid JSON: {error.args[0] if error.args else error}") from None
    if not isinstance(value, dict):
        raise ApiError(422, "invalid-record", "the request body must be a JSON object", [FieldError("", "expected a JSON object")])
    return value
