"""Outbound authentication to EHR targets: none, a static bearer token, HTTP basic, or SMART
Backend Services (client-credentials grant with a signed JWT assertion, signed by
`service.auth.client_assertion`). The SMART access token is cached until shortly before it
expires; `invalidate()` drops it (the client calls it on a 401, then retries once).
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from typing import Callable, Protocol

import httpx

from ..auth.client_assertion import ASSERTION_TYPE, ClientAssertionError, sign_client_assertion
from .errors import FatalTargetError, TemporaryError
from .retry import is_temporary_status, parse_retry_after
from .targets import TargetConfig

log = logging.getLogger(__name__)

REFRESH_MARGIN_SECONDS = 30.0


class OutboundAuth(Protocol):
    def headers(self) -> dict[str, str]: ...

    def invalidate(self) -> None: ...


class NoAuth:
    def headers(self) -> dict[str, str]:
        return {}

    def invalidate(self) -> None:
        return None


class StaticHeaderAuth:
    def __init__(self, value: str) -> None:
        self._value = value

    def headers(self) -> dict[str, str]:
        return {"Authorization": self._value}

    def invalidate(self) -> None:
        return None

    def __repr__(self) -> str:
        return "StaticHeaderAuth(***)"


class SmartBackendAuth:
    """SMART Backend Services: POST a signed client assertion to the token endpoint; cache the
    access token until `REFRESH_MARGIN_SECONDS` (or 10 % of its life, if shorter) before expiry."""

    def __init__(
        self, target: TargetConfig, http: httpx.Client, *, clock: Callable[[], float] = time.time,
    ) -> None:
        self._target = target
        self._http = http
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self._refresh_at = 0.0
        self._token_url = target.token_url
        self.token_requests = 0

    def token_url(self) -> str:
        if self._token_url:
            return self._token_url
        url = f"{self._target.base_url}/.well-known/smart-configuration"
        try:
            response = self._http.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as error:
            raise TemporaryError(None, f"SMART discovery failed: {type(error).__name__}") from None
        if response.status_code != 200:
            if is_temporary_status(response.status_code):
                raise TemporaryError(response.status_code, "SMART discovery failed")
            raise FatalTargetError(f"target {self._target.name}: no SMART configuration (HTTP {response.status_code})")
        endpoint = response.json().get("token_endpoint")
        if not isinstance(endpoint, str) or not endpoint:
            raise FatalTargetError(f"target {self._target.name}: SMART configuration has no token_endpoint")
        self._token_url = endpoint
        return endpoint

    def headers(self) -> dict[str, str]:
        with self._lock:
            if self._token is None or self._clock() >= self._refresh_at:
                self._fetch()
            return {"Authorization": f"Bearer {self._token}"}

    def invalidate(self) -> None:
        with self._lock:
            self._token = None
            self._refresh_at = 0.0

    def _fetch(self) -> None:
        token_url = self.token_url()
        try:
            assertion = sign_client_assertion(
                client_id=self._target.client_id or "", token_url=token_url, private_key_pem=self._target.private_key(),
                key_id=self._target.key_id or "", alg=self._target.alg,
            )
        except ClientAssertionError as error:
            raise FatalTargetError(f"target {self._target.name}: {error}") from None
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        }
        if self._target.scope:
            form["scope"] = self._target.scope
        self.token_requests += 1
        try:
            response = self._http.post(token_url, data=form, headers={"Accept": "application/json"})
        except httpx.HTTPError as error:
            raise TemporaryError(None, f"token request failed: {type(error).__name__}") from None
        if response.status_code != 200:
            if is_temporary_status(response.status_code):
                raise TemporaryError(
                    response.status_code, "token request failed", parse_retry_after(response.headers.get("Retry-After"))
                )
            try:
                reason = response.json().get("error", "")
            except ValueError:
                reason = ""
            raise FatalTargetError(f"target {self._target.name}: token endpoint refused ({response.status_code} {reason})")
        body = response.json()
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise FatalTargetError(f"target {self._target.name}: token response without access_token")
        lifetime = float(body.get("expires_in") or 300)
        now = self._clock()
        self._token = token
        self._expires_at = now + lifetime
        self._refresh_at = self._expires_at - min(REFRESH_MARGIN_SECONDS, lifetime * 0.1)
        log.info("sync target %s: got an access token (expires in %ss)", self._target.name, int(lifetime))


def make_auth(target: TargetConfig, http: httpx.Client, clock: Callable[[], float] = time.time) -> OutboundAuth:
    if target.auth == "bearer":
        return StaticHeaderAuth(f"Bearer {target.token}")
    if target.auth == "basic":
        raw = f"{target.username}:{target.password}".encode()
        return StaticHeaderAuth("Basic " + base64.b64encode(raw).decode())
    if target.auth == "smart":
        return SmartBackendAuth(target, http, clock=clock)
    return NoAuth()
