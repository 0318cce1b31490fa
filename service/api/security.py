"""Inbound security of the HTTP API: authentication (service.auth), doors (roles), tenancy
(the token's clinic), rate limiting, and the request-scoped principal.

Wiring (see `create_app`):

- `authenticate` is a dependency on every router except the public ones (health, SMART
  discovery, CapabilityStatement, the billing page shell and its static files). It validates
  the bearer token per `AuthSettings.mode` (`dev` / `jwt` for real; `disabled` only outside
  production), applies the per-client rate limit, and stores the `Principal` in
  `request.state.principal` (the audit middleware reads it from there).
- `door(Action)` adds the role check of `service.auth.roles.ACCESS` on top.
- `tenant(request, requested)` is the clinic a request acts for: the token's `clinic` claim;
  a `clinic_id` parameter may only repeat it (another clinic -> 403). An admin token without a
  clinic acts for the clinic it names (and must name one where a clinic is needed).
- Patient-confined tokens (a SMART `patient` claim) are for the FHIR API only: the domain,
  coverage and sync doors refuse them (403), so they cannot step outside the compartment there.

Errors: `AuthError` becomes 401/403/503 with `WWW-Authenticate` - an OperationOutcome under
/fhir, a problem document elsewhere; `RateLimited` becomes 429 with `Retry-After`.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable

from fastapi import FastAPI, Request
from starlette.responses import Response

from .offload import in_thread
from ..auth import AuthError, AuthSettings, Principal, require_role
from ..auth.errors import forbidden, unauthorized
from ..auth.fastapi import auth_error_response, www_authenticate
from ..auth.roles import Action, Role
from ..auth.token_cache import VerifiedTokenCache
from ..auth.tokens import disabled_principal, validate_token
from .problems import PROBLEM_BASE, problem

FHIR_PREFIX = "/fhir"

class RateLimited(Exception):
    def __init__(self, retry_after: int) -> None:
        super().__init__("rate limited")
        self.retry_after = retry_after


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """Token buckets per client key (token subject, else the client address): `per_minute`
    requests a minute with bursts up to `burst`. `per_minute <= 0` switches it off."""

    def __init__(self, per_minute: int, burst: int | None = None, *, clock: Callable[[], float] = time.monotonic,
                 max_clients: int = 10_000) -> None:
        self.per_minute = per_minute
        self.burst = max(1, burst if burst is not None else per_minute)
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_clients

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def hit(self, key: str) -> None:
        """Take one token for `key`; raise `RateLimited` when none is left."""
        if not self.enabled:
            return
        rate = self.per_minute / 60.0
        now = self._clock()
        with self._lock:
            bucket = self._buckets.pop(key, None) or _Bucket(float(self.burst), now)
            bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.stamp) * rate)
            bucket.stamp = now
            self._buckets[key] = bucket
            while len(self._buckets) > self._max:
                self._buckets.popitem(last=False)
            if bucket.tokens < 1.0:
                raise RateLimited(max(1, math.ceil((1.0 - bucket.tokens) / rate)))
            bucket.tokens -= 1.0


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _is_fhir(path: str) -> bool:
    return path == FHIR_PREFIX or path.startswith(FHIR_PREFIX + "/")


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), else None."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


async def authenticate(request: Request) -> Principal:
    """The validated caller of this request (also kept in `request.state.principal`). A token
    seen before is taken from the verified-token cache (claims re-checked, service/auth/
    token_cache.py); a new one is verified in the threadpool (fetching a key set may block)."""
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached
    state = request.app.state
    settings: AuthSettings = state.auth_settings
    limiter: RateLimiter = state.rate_limiter
    if settings.mode == "disabled":
        principal = disabled_principal()
    else:
        token = bearer_token(request)
        if token is None:
            limiter.hit("ip:" + client_address(request))
            raise unauthorized("token_missing", "A bearer token is required.")
        tokens: VerifiedTokenCache = state.token_cache
        try:
            principal = tokens.principal(token, settings)
            if principal is None:
                principal = await in_thread(validate_token, token, settings, keys=getattr(state, "auth_keys", None))
                tokens.remember(token, principal, settings)
        except AuthError:
            limiter.hit("ip:" + client_address(request))
            raise
    limiter.hit("sub:" + principal.issuer + "|" + principal.subject)
    request.state.principal = principal
    return principal


def door(action: Action) -> Callable[..., Principal]:
    """A dependency: authenticated, allowed `action` by its roles, and (except for the FHIR API)
    not confined to a patient compartment."""

    async def allowed(request: Request) -> Principal:
        principal = await authenticate(request)
        require_role(principal, action)
        if action is not Action.FHIR_API and principal.confined_to_patient:
            raise forbidden("patient_confined", "Patient-context tokens may use the FHIR API only.")
        return principal

    allowed.__name__ = f"door_{action.value.replace('.', '_')}"
    return allowed


def door_any(*actions: Action) -> Callable[..., Principal]:
    """Like `door`, allowed when the roles permit ANY of `actions`."""

    async def allowed(request: Request) -> Principal:
        from ..auth.roles import has_access

        principal = await authenticate(request)

        if not any(has_access(principal, action) for action in actions):
            require_role(principal, actions[0])
        if principal.confined_to_patient:
            raise forbidden("patient_confined", "Patient-context tokens may use the FHIR API only.")
        return principal

    allowed.__name__ = "door_any_" + "_".join(a.value.replace(".", "_") for a in actions)
    return allowed


def principal_of(request: Request) -> Principal:
    principal = getattr(request.state, "principal", None)
    if principal is None:  # pragma: no cover - every guarded route authenticates first
        raise unauthorized("token_missing", "A bearer token is required.")
    return principal


def is_global_admin(principal: Principal) -> bool:
    """An admin token without a clinic claim: acts for whichever clinic it names."""
    return principal.clinic_id is None and Role.ADMIN.value in principal.roles


def tenant(request: Request, requested: str | None = None, *, required: bool = True) -> str | None:
    """The clinic this request acts for. `requested` (a clinic_id parameter or body field) must
    equal the token's clinic (403 otherwise); a global admin acts for `requested`. Raises 403
    when no clinic can be decided and `required`."""
    principal = principal_of(request)
    if principal.clinic_id is not None:
        if requested is not None and requested != principal.clinic_id:
            raise forbidden("wrong_clinic", "The token does not act for this clinic.")
        return principal.clinic_id
    if is_global_admin(principal):
        if requested is None and required:
            raise forbidden("clinic_required", "This token acts for every clinic: name one with clinic_id.")
        return requested
    raise forbidden("clinic_required", "The token carries no clinic claim.")


def check_owner(request: Request, owner_clinic: str | None) -> None:
    """Tenancy of a stored object: another clinic's object is reported as not found (404), so
    its existence does not leak."""
    principal = principal_of(request)
    if is_global_admin(principal):
        return
    if owner_clinic is None or owner_clinic != principal.clinic_id:
        from .problems import ApiError

        raise ApiError(404, "not-found", "no such resource")


# --------------------------------------------------------------------------- errors


def auth_problem(request_path: str, error: AuthError) -> Response:
    if _is_fhir(request_path):
        return auth_error_response(error)
    headers = {"Cache-Control": "no-store"}
    if error.status in (401, 403):
        headers["WWW-Authenticate"] = www_authenticate(error)
    kind = {401: "unauthorized", 403: "forbidden", 503: "auth-unavailable"}[error.status]
    return problem(error.status, kind, error.message, headers=headers, instance=request_path)


def rate_limited_response(request_path: str, retry_after: int) -> Response:
    return problem(
        429, "rate-limited", f"too many requests; retry after {retry_after} s",
        headers={"Retry-After": str(retry_after)}, instance=request_path,
    )


def install_security(app: FastAPI, auth_settings: AuthSettings, *, rate_per_minute: int, rate_burst: int | None) -> None:
    """Keep the settings and the limiter on `app.state` and map the errors."""
    app.state.auth_settings = auth_settings
    app.state.rate_limiter = RateLimiter(rate_per_minute, rate_burst)
    app.state.token_cache = VerifiedTokenCache()

    async def _auth(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, AuthError)
        return auth_problem(request.url.path, exc)

    async def _limited(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RateLimited)
        return rate_limited_response(request.url.path, exc.retry_after)

    app.add_exception_handler(AuthError, _auth)
    app.add_exception_handler(RateLimited, _limited)


SECURITY_PROBLEM_TYPES: dict[int, str] = {
    401: PROBLEM_BASE + "unauthorized", 403: PROBLEM_BASE + "forbidden", 429: PROBLEM_BASE + "rate-limited",
}

__all__ = [
    "RateLimited", "RateLimiter", "authenticate", "check_owner", "door", "install_security", "is_global_admin",
    "principal_of", "tenant",
]
