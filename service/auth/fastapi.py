"""FastAPI glue for `service.auth`: a `Principal` dependency and the `AuthError` -> HTTP mapping.

Depends only on fastapi and the framework-free core. Wiring (done in `service/api/`):

    settings = AuthSettings()
    current_principal = principal_dependency(settings)
    install_auth_error_handler(app)               # AuthError -> 401/403/503 + WWW-Authenticate

    @router.get("/fhir/Observation/{id}")
    def read(id: str, principal: Annotated[Principal, Depends(current_principal)]): ...

    # or a door-level check:
    @router.post("/coverage/...", dependencies=[Depends(action_dependency(current_principal, Action.COVERAGE_WRITE))])

No `from __future__ import annotations` here: FastAPI must see the closures' real annotations.

Missing credentials -> 401 with `WWW-Authenticate: Bearer realm="..."` (RFC 6750 section 3.1: no
error code when no token was sent); an invalid token -> 401 with `error="invalid_token"`; valid
but not allowed -> 403 with `error="insufficient_scope"`.
"""

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.auth.errors import AuthError, unauthorized
from service.auth.keys import KeySource
from service.auth.roles import Action, require_role
from service.auth.settings import AuthSettings
from service.auth.tokens import Principal, disabled_principal, validate_token

REALM = "ketamine-fhir-service"

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="SMARTBearer",
    bearerFormat="JWT",
    description="SMART Backend Services access token (see /.well-known/smart-configuration).",
)


def principal_dependency(settings: AuthSettings, *, keys: KeySource | None = None) -> Callable[..., Principal]:
    """A FastAPI dependency returning the validated `Principal` of the request.

    Raises `AuthError` (map it with `install_auth_error_handler`). In `disabled` mode (never in
    production) every request is `disabled_principal()`. The dependency is a plain `def`: FastAPI
    runs it in the thread pool, so a blocking JWKS fetch never stalls the event loop.
    """

    def current_principal(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if settings.mode == "disabled":
            return disabled_principal()
        if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
            raise unauthorized("token_missing", "A bearer token is required.")
        return validate_token(credentials.credentials, settings, keys=keys)

    return current_principal


def action_dependency(principal_dep: Callable[..., Principal], action: Action | str) -> Callable[..., Principal]:
    """A dependency that yields the principal after `require_role(principal, action)`."""

    def allowed_principal(principal: Annotated[Principal, Depends(principal_dep)]) -> Principal:
        require_role(principal, action)
        return principal

    return allowed_principal


def www_authenticate(error: AuthError) -> str:
    """The `WWW-Authenticate` header value for `error` (RFC 6750)."""
    if error.code == "token_missing":
        return f'Bearer realm="{REALM}"'
    return f'Bearer realm="{REALM}", error="{error.oauth_error}", error_description="{error.message}"'


def auth_error_response(error: AuthError) -> JSONResponse:
    """A FHIR OperationOutcome response for `error` with the right status and headers."""
    issue_code = {401: "login", 403: "forbidden", 503: "transient"}[error.status]
    headers = {"Cache-Control": "no-store"}
    if error.status in (401, 403):
        headers["WWW-Authenticate"] = www_authenticate(error)
    body = {
        "resourceType": "OperationOutcome",
        "issue": [
            {
                "severity": "error",
                "code": issue_code,
                "details": {"coding": [{"code": error.code}], "text": error.message},
                "diagnostics": error.message,
            }
        ],
    }
    return JSONResponse(body, status_code=error.status, headers=headers, media_type="application/fhir+json")


def install_auth_error_handler(app: FastAPI) -> None:
    """Register `auth_error_response` as the handler of `AuthError` on `app`."""

    async def _handle(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AuthError)
        return auth_error_response(exc)

    app.add_exception_handler(AuthError, _handle)
