"""JSON nesting limit for every JSON request body (domain, coverage, sync admin and FHIR).

`check_depth(body)` is linear and runs at C speed: string literals are blanked with one regular
expression, everything but brackets is dropped with `bytes.translate`, then innermost `[]`/`{}`
pairs are removed once per nesting level - more than `MAX_DEPTH` rounds means too deep.
`JsonDepthMiddleware` applies it to every request whose Content-Type is JSON (`application/json`,
`*+json`, NDJSON) before any handler parses it: 400 problem document (an OperationOutcome
under /fhir), nothing read further.
"""

from __future__ import annotations

import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .problems import ApiError, problem

MAX_DEPTH = 64
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_KEEP = b"[]{}"
_DROP = bytes(b for b in range(256) if b not in _KEEP)


class TooDeep(ApiError):
    def __init__(self) -> None:
        super().__init__(400, "json-too-deep", f"JSON nested deeper than {MAX_DEPTH} levels is not accepted")


def json_depth_exceeds(body: bytes, limit: int = MAX_DEPTH) -> bool:
    """True when `body` nests arrays/objects deeper than `limit`."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    brackets = _STRING.sub(b'""', body).translate(None, _DROP)
    for _ in range(limit):
        if not brackets:
            return False
        shorter = brackets.replace(b"[]", b"").replace(b"{}", b"")
        if len(shorter) == len(brackets):
            return False  # unbalanced: a syntax error the parser reports
        brackets = shorter
    return bool(brackets) and (b"[]" in brackets or b"{}" in brackets)


def check_depth(body: bytes) -> None:
    if json_depth_exceeds(body):
        raise TooDeep()


def _is_json(content_type: bytes) -> bool:
    media = content_type.split(b";")[0].strip().lower()
    return media in (b"application/json", b"application/x-ndjson", b"application/ndjson", b"application/jsonl") or (
        media.startswith(b"application/") and media.endswith(b"+json")
    )


class JsonDepthMiddleware:
    """Buffers JSON request bodies (already bounded by the body limit) and refuses deep ones."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        content_type = dict(scope.get("headers") or []).get(b"content-type", b"")
        if not _is_json(content_type):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            try:
                message = await receive()
            except ApiError as error:  # BodyTooLarge from the size limit around us
                await problem(error.status, error.kind, error.detail)(scope, receive, send)
                return
            if message["type"] != "http.request":
                await self.app(scope, receive, send)  # disconnect: let the app see it
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if json_depth_exceeds(body):
            error = TooDeep()
            await problem(error.status, error.kind, error.detail)(scope, receive, send)
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
