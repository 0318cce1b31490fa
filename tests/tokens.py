"""Access tokens for API tests: real dev-mode tokens (RS384, the local dev key), verified by the
app exactly as in a running service - authentication is never switched off for these tests.

    client = authorize(TestClient(create_app(services=services)))          # global admin
    client.get(..., headers=bearer(roles=("billing",), clinic="riverbend"))
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from service.auth.dev import mint_dev_token

T = TypeVar("T")


def token(scope: str = "system/*.cruds", *, roles: Iterable[str] = ("admin",), clinic: str | None = None,
          patient: str | None = None, lifetime: int = 3600, subject: str = "test-client") -> str:
    return mint_dev_token(scope, clinic=clinic, patient=patient, roles=tuple(roles), lifetime=lifetime, subject=subject)


def bearer(scope: str = "system/*.cruds", **kwargs: object) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(scope, **kwargs)}"}  # type: ignore[arg-type]


def authorize(client: T, scope: str = "system/*.cruds", **kwargs: object) -> T:
    """Set a default Authorization header on a TestClient / httpx client (default: an admin token
    without a clinic claim, which acts for whichever clinic a request names)."""
    client.headers.update(bearer(scope, **kwargs))  # type: ignore[attr-defined]
    return client
