"""Verified-token cache: a bearer token whose signature was verified once is not verified again
on every request.

EHR systems and the billing page send the same access token on every request until it
expires (SMART Backend Services tokens live minutes). Verifying it costs a JWK construction
and an RSA/EC signature check each time, and - when the key set is fetched over HTTP - may
block, so it runs off the event loop. The cache keeps the *verified claims* under the
SHA-256 of the token (never the token itself); a hit re-checks the registered claims
(`principal_from_claims`: exp, nbf, iat, aud, issuer ... against the current time), so an
expired token is refused exactly as without the cache.

What the cache changes: a token verified with a key that is later removed from the key set
stays accepted until its `exp` (at most `max_age_seconds`, 5 minutes by default, after
which it is verified again). Bounded: at most `size` tokens, oldest dropped first.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Mapping
from typing import Any, Callable

from .settings import AuthSettings
from .tokens import Principal, principal_from_claims


class VerifiedTokenCache:
    """Claims of tokens whose signature verified (module docstring)."""

    def __init__(self, size: int = 4096, max_age_seconds: float = 300.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.size = size
        self.max_age_seconds = max_age_seconds
        self.clock = clock
        self._entries: dict[bytes, tuple[float, Mapping[str, Any]]] = {}
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
        return principal_from_claims(entry[1], settings, now=now)

    def remember(self, token: str, principal: Principal) -> None:
        with self._lock:
            while len(self._entries) >= self.size:
                self._entries.pop(next(iter(self._entries)))
            self._entries[self._key(token)] = (self.clock(), principal.claims)
