"""Inbound authentication and authorization: JWT bearer tokens (python-jose), SMART scopes,
roles and tenancy. The only package that imports `jose`. Framework-free, except `fastapi.py`.

Public API (see each module's docstring):

- `settings.AuthSettings` - `AUTH_*` / `SERVICE_ENV` configuration.
- `tokens.validate_token(token, settings, *, keys=None, now=None) -> Principal`.
- `scopes.ScopeSet`, `scopes.Permission`, `scopes.Grant`, `scopes.parse_scope`.
- `roles.Action`, `roles.Role`, `roles.ACCESS`, `roles.require_role`, `roles.require_clinic`,
  `roles.require_patient_access`.
- `keys.UrlJwksSource`, `keys.FileJwksSource`, `keys.StaticJwks`, `keys.ensure_dev_keypair`.
- `dev.mint_dev_token(scope, clinic=None, patient=None, roles=("ehr-system",), lifetime=3600, settings=None)`.
- `smart_configuration.smart_configuration(settings)`, `smart_configuration.capability_security(settings)`.
- `fastapi.principal_dependency(settings)`, `fastapi.install_auth_error_handler(app)`.
"""

from service.auth.errors import AuthError
from service.auth.roles import Action, Role, require_clinic, require_patient_access, require_role
from service.auth.scopes import Grant, Permission, ScopeSet
from service.auth.settings import AuthSettings
from service.auth.tokens import Principal, validate_token

__all__ = [
    "Action",
    "AuthError",
    "AuthSettings",
    "Grant",
    "Permission",
    "Principal",
    "Role",
    "ScopeSet",
    "require_clinic",
    "require_patient_access",
    "require_role",
    "validate_token",
]
