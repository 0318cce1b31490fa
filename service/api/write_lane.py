"""The write lane: `PUT /api/v1/<kind>/<key>` - documenting a record, the API's busiest request -
served without FastAPI's routing and dependency machinery.

FastAPI spends, per request, a route scan (gated routers, then the kind's routes, the matching
one twice), a dependency solve (the door, the key's path parameter), its exception middleware
and an exit stack. For a session write that was about a tenth of the server's CPU
(docs/decisions/0011, item 18). The lane sits inside the app's own middlewares (audit, problem
catch-all, body size limit, JSON depth), so those still run once for every request, and does
exactly what the route does with the same functions:

- the key must match `KEY_PATTERN`; anything else is left to the FastAPI route (whose
  validation error is the documented 422), as is every other method and path;
- the route's door (`door(Action.DOMAIN_WRITE)`: authentication, rate limit, role, no patient-
  confined token), then the route's handler body (`put_one_response` in service/api/records.py,
  which the route calls too);
- an exception goes to the app's exception handler for its type (the one FastAPI would call),
  and without one it propagates to the problem catch-all (a 500 problem), as from a route;
- the audit middleware sees the same route (`scope["route"]`, for its operation id) and path
  parameters as for a routed request.

`tests/api/test_write_lane.py` sends the same requests - created, updated, replayed, invalid,
unauthenticated, refused, malformed - through the lane and through the FastAPI route and
compares status, headers, body and audit events.
"""

from __future__ import annotations

import re
from typing import Any, Awaitable, Callable, Iterable, Iterator

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette._utils import is_async_callable
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from ..auth.roles import Action
from ..domain.records import RECORD_KINDS
from .records import KEY_PATTERN, put_one_response
from .security import door

PREFIX = "/api/v1/"
_KEY = re.compile(KEY_PATTERN)


class RecordWriteLane:
    """ASGI middleware serving `PUT /api/v1/<kind>/<key>` directly (see the module docstring)."""

    def __init__(self, app: ASGIApp, fastapi_app: FastAPI) -> None:
        self.app = app
        self.fastapi_app = fastapi_app
        self.door = door(Action.DOMAIN_WRITE)
        self._routes: dict[str, APIRoute] | None = None

    def _route_of(self, kind: str) -> APIRoute | None:
        if self._routes is None:  # the app's routes are complete once it serves requests
            wanted = {f"put_{k.replace('-', '_')}": k for k in RECORD_KINDS}
            self._routes = {
                wanted[r.operation_id]: r for r in _api_routes(self.fastapi_app.routes)
                if r.operation_id in wanted and "PUT" in r.methods
            }
        return self._routes.get(kind)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "PUT" and scope["path"].startswith(PREFIX):
            kind, _, key = scope["path"][len(PREFIX):].partition("/")
            route = self._route_of(kind) if _KEY.match(key) else None
            if route is not None:
                await self._serve(route, kind, key, scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _serve(self, route: APIRoute, kind: str, key: str, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self.fastapi_app  # what the router would set: request.app, its state and services
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {"key": key}
        request = Request(scope, receive, send)
        try:
            await self.door(request)
            response = await put_one_response(request, kind, key)
        except Exception as error:  # noqa: BLE001 - mapped like the exception middleware maps a route's
            handler = self._handler_for(error)
            if handler is None:
                raise
            response = await handler(request, error)
        await response(scope, receive, send)

    def _handler_for(self, error: Exception) -> Callable[[Request, Exception], Awaitable[Any]] | None:
        """The handler Starlette's exception middleware would pick: the nearest class in the
        error's MRO (`Exception` itself belongs to the server-error middleware, as there)."""
        handlers = self.fastapi_app.exception_handlers
        for kind in type(error).__mro__:
            if kind is Exception:
                return None
            if kind in handlers:
                handler = handlers[kind]
                if not is_async_callable(handler):
                    return lambda request, exc: run_in_threadpool(handler, request, exc)
                return handler
        return None


def _api_routes(routes: Iterable[Any]) -> Iterator[APIRoute]:
    """Every APIRoute of an app, inside included routers too (FastAPI keeps an included router
    as one route whose `original_router` holds the routes, and sets `scope["route"]` to the
    original APIRoute - which the audit middleware reads)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _api_routes(inner.routes)
