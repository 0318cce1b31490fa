"""Typed authentication / authorization errors raised by every module of `service.auth`.

One exception type, `AuthError`, carries the HTTP status the API layer should answer with
(401: no or unusable credentials; 403: valid credentials, not enough rights; 503: the key
source is unreachable and nothing is cached), a stable machine `code` (tests and logs key on it)
and a human `message`. Messages are fixed strings chosen here: they never echo token contents,
claim values or key material, so an error can be logged or returned to the caller as is.
"""

from __future__ import annotations

from typing import Literal

AuthStatus = Literal[401, 403, 503]

#: OAuth 2.0 bearer-token error (RFC 6750 section 3.1) for each status.
_OAUTH_ERROR = {401: "invalid_token", 403: "insufficient_scope", 503: "temporarily_unavailable"}


class AuthError(Exception):
    """Authentication (401) or authorization (403) failure, or key source unavailable (503)."""

    def __init__(self, status: AuthStatus, code: str, message: str) -> None:
        super().__init__(message)
        self.status: AuthStatus = status
        self.code = code
        self.message = message

    @property
    def oauth_error(self) -> str:
        """The RFC 6750 `error` value for a `WWW-Authenticate: Bearer` header."""
        return _OAUTH_ERROR[self.status]

    def __repr__(self) -> str:
        return f"AuthError(status={self.status}, code={self.code!r}, message={self.message!r})"


def unauthorized(code: str, message: str) -> AuthError:
    """A 401: the request carries no usable credentials."""
    return AuthError(401, code, message)


def forbidden(code: str, message: str) -> AuthError:
    """A 403: the credentials are valid but do not grant this."""
    return AuthError(403, code, message)
