"""Verified-token cache: a bearer token whose signature was verified once is not verified again
on every request.

EHR systems and the billing page send the same access token on every request until it
expires (SMART Backend Services tokens live minutes). Verifying it costs a JWK construction
and an RSA/EC signature check each time, and - when the key set is fetched over HTTP - may
block, so it runs off the event loop. The cache keeps the *verified claims* under the
SHA-256 of the token (never the token itself), with the `Principal` built from them. A hit
re-checks the time claims (exp, nbf, iat against the current time), so an expired token is
refused exactly as without the cache; the other claims (issuer, audience, roles, scopes)
cannot change, so the principal is reused - unless the `AuthSettings` object differs from the
one it was built under, in which case every claim is checked again (`principal_from_claims`).

What the cache changes: a token verified with a key that is later removed from the key set
stays accepted until its `exp` (at most `max_age_seconds`, 5 minutes by default, after
which it is verified again). Bounded: at most `size` tokens, oldest dropped first.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Callable

from .settings import AuthSettings
from .tokens import Principal, check_token_times, principal_from_claims


class VerifiedTokenCache:
    """Claims of tokens whose signature verified (module docstring)."""

    def __init__(self, size: int = 4096, max_age_seconds: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.size = size
        self.max_age_seconds = max_age_seconds
        self.clock = clock
        self._entries: dict[bytes, tuple[float, Principal, AuthSettings | None]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _key(token: str) -> bytes:
        return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()

    def principal(self, token: str, settings: AuthSettings) -> Principal | None:
        """The principal of a cached token (claims re-checked now; AuthError if no longer
        valid), or None when the token is not cached (verify it, then `remember`)."""
        key = self._key(token)
        entry = self._entries.get(key)
        if entry is None:
            return None
        now = self.clock()
        if now - entry[0] > self.max_age_seconds:
            with self._lock:
                self._entries.pop(key, None)
            return None
        stamp, principal, built_under = entry
        if built_under is settings:
            check_token_times(principal.claims, settings, now=now)
            return principal
        return principal_from_claims(principal.claims, settings, now=now)

    def remember(self, token: str, principal: Principal, settings: AuthSettings | None = None) -> None:
        """Cache a verified token's principal; `settings` are those it was verified under (a hit
        under other settings re-checks every claim)."""
        with self._lock:
            while len(self._entries) >= self.size:
                self._entries.pop(next(iter(self._entries)))
            self._entries[self._key(token)] = (self.clock(), principal, settings)
