"""Local dev tokens: `mint_dev_token` signs with the dev key pair (RS384) under `dev_key_dir`.

The tokens carry the same claims a real IdP would (`iss`, `aud`, `sub`, `client_id`, `exp`,
`iat`, `nbf`, `jti`, `scope`, `roles`, optional `clinic` / `patient`) and are verified by the
normal path in dev mode. Minting is refused whenever `settings.environment == "production"`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable

from jose import jwt as jose_jwt

from service.auth.keys import DEV_ALGORITHM, ensure_dev_keypair
from service.auth.settings import DEV_AUDIENCE, DEV_ISSUER, AuthSettings
from service.auth.tokens import KNOWN_ROLES

DEFAULT_DEV_ROLES: tuple[str, ...] = ("ehr-system",)
MAX_DEV_LIFETIME_SECONDS = 7 * 24 * 3600


class DevTokenRefusedError(RuntimeError):
    """Raised when a dev token is requested under production settings."""


def mint_dev_token(
    scope: str,
    clinic: str | None = None,
    patient: str | None = None,
    roles: Iterable[str] = DEFAULT_DEV_ROLES,
    lifetime: int = 3600,
    settings: AuthSettings | None = None,
    *,
    subject: str = "dev-client",
    now: float | None = None,
) -> str:
    """A signed RS384 access token for local use (never in production).

    `scope`: space-separated SMART scopes, e.g. `"system/*.rs"` or
    `"patient/*.rs"` (with `patient=`). `roles`: names from `KNOWN_ROLES`. `lifetime`: seconds
    (1 .. 7 days). Issuer/audience: `settings.issuer` / first `settings.audience`, falling back to
    the dev values when unset.
    """
    settings = settings if settings is not None else AuthSettings()
    if settings.environment == "production":
        raise DevTokenRefusedError("dev tokens cannot be minted when SERVICE_ENV=production")
    role_list = sorted(dict.fromkeys(roles))
    unknown = set(role_list) - KNOWN_ROLES
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}; expected some of {sorted(KNOWN_ROLES)}")
    if not 0 < lifetime <= MAX_DEV_LIFETIME_SECONDS:
        raise ValueError(f"lifetime must be between 1 and {MAX_DEV_LIFETIME_SECONDS} seconds")
    keypair = ensure_dev_keypair(settings.dev_key_dir)
    issued = int(time.time() if now is None else now)
    claims: dict[str, object] = {
        "iss": settings.issuer or DEV_ISSUER,
        "aud": settings.audience[0] if settings.audience else DEV_AUDIENCE,
        "sub": subject,
        "client_id": subject,
        "iat": issued,
        "nbf": issued,
        "exp": issued + lifetime,
        "jti": str(uuid.uuid4()),
        "scope": " ".join(scope.split()),
        "roles": role_list,
    }
    if clinic is not None:
        claims["clinic"] = clinic
    if patient is not None:
        claims["patient"] = patient
    token: str = jose_jwt.encode(
        claims, keypair.private_pem.decode(), algorithm=DEV_ALGORITHM, headers={"kid": keypair.kid, "typ": "JWT"}
    )
    return token
