"""The billing page: `GET /billing?clinic_id=...` (HTML) and its script and style sheet under
`/billing/static/`. The page is a static shell; everything it shows comes from the coverage API
(`/api/v1/coverage/...`) through one `api()` function in billing.js, so the Authorization header
can be added in one place when auth lands.

The page is left out of the OpenAPI document (it is not part of the API). Whether the
medical-necessity packet API is mounted is decided here from the app's routes, so the page hides
"Build packet" where it is missing. A strict Content-Security-Policy forbids inline script and
any origin but this one.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Request
from starlette.responses import Response

router = APIRouter(include_in_schema=False)

STATIC_DIR = Path(__file__).resolve().parent / "static"
PACKETS_PATH = "/api/v1/coverage/packets"
ASSETS = {"billing.js": "text/javascript; charset=utf-8", "billing.css": "text/css; charset=utf-8"}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-src 'self' blob:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@lru_cache(maxsize=None)
def _read(name: str) -> str:
    return (STATIC_DIR / name).read_text(encoding="utf-8")


def packets_available(request: Request) -> bool:
    """True when the packet API (POST /api/v1/coverage/packets) is mounted on this app. Read from
    the app's OpenAPI document (built once and cached by FastAPI), which lists every mounted route
    whatever the router nesting."""
    app = request.app
    known = getattr(app.state, "billing_packets_available", None)
    if known is None:
        try:
            paths = app.openapi().get("paths", {})
        except Exception:  # a broken schema must not take the page down; the button is then hidden
            paths = {}
        known = "post" in paths.get(PACKETS_PATH, {})
        app.state.billing_packets_available = known
    return bool(known)


@router.get("/billing")
def billing_page(request: Request) -> Response:
    """The page shell; `clinic_id` (and optional `state`) are read by the script from the URL."""
    html = _read("billing.html").replace("{{PACKETS}}", "true" if packets_available(request) else "false")
    return Response(html, media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS)


@router.get("/billing/static/{name}")
def billing_asset(name: Literal["billing.js", "billing.css"]) -> Response:
    return Response(_read(name), media_type=ASSETS[name], headers=SECURITY_HEADERS)


__all__ = ["router", "packets_available"]
