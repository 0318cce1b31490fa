"""Inbound authentication settings (`AuthSettings`), read from `AUTH_*` environment variables.

Modes:

- `dev` (default outside production): tokens are verified for real, against the local dev key
  pair under `dev_key_dir` (created on first use, see `service.auth.keys.ensure_dev_keypair`);
  issuer and audience default to the local values `DEV_ISSUER` / `DEV_AUDIENCE`. Mint tokens
  with `service.auth.dev.mint_dev_token`.
- `jwt`: tokens from a real identity provider; `issuer`, `audience`, `token_endpoint` and one of
  `jwks_url` / `jwks_file` are required.
- `disabled`: no authentication at all (every request acts as `disabled_principal()`); refused
  when `environment == "production"`.

`environment` comes from `SERVICE_ENV` (`development` | `production`); `AUTH_ENVIRONMENT` is
accepted too. Production refuses `dev` and `disabled` modes and plain-http JWKS URLs, so a
production deployment that forgot to configure authentication fails at start-up, not open.

`audience` accepts one value or several (`AUTH_AUDIENCE='["https://a/fhir","https://b/fhir"]'`
or a comma-separated list): a token is accepted when any of its `aud` values is one of them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DEV_KEY_DIR = PROJECT_ROOT / ".local" / "dev-keys"

DEV_ISSUER = "urn:ketamine-fhir-service:dev-issuer"
"""`iss` of locally minted dev tokens (a URN: nothing is served there)."""
DEV_AUDIENCE = "urn:ketamine-fhir-service:fhir"
"""`aud` of locally minted dev tokens."""
DEV_TOKEN_ENDPOINT = "https://token-endpoint.invalid/dev"
"""Advertised in dev mode: no token endpoint exists (`.invalid` is reserved, RFC 2606)."""

AuthMode = Literal["dev", "jwt", "disabled"]
Environment = Literal["development", "production"]


class AuthSettings(BaseSettings):
    """How inbound bearer tokens are verified."""

    model_config = SettingsConfigDict(
        env_prefix="AUTH_", env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    mode: AuthMode = "dev"
    environment: Environment = Field(
        default="development", validation_alias=AliasChoices("SERVICE_ENV", "AUTH_ENVIRONMENT", "environment")
    )
    issuer: str | None = None
    """Expected `iss` (exact match). Defaults to `DEV_ISSUER` in dev mode."""
    audience: Annotated[tuple[str, ...], NoDecode] = ()
    """Accepted `aud` values (any one suffices). Defaults to `(DEV_AUDIENCE,)` in dev mode."""
    jwks_url: str | None = None
    jwks_file: Path | None = None
    token_endpoint: str | None = None
    """The IdP's token endpoint, advertised in `/.well-known/smart-configuration`."""
    clock_skew_seconds: int = Field(default=60, ge=0, le=600)
    jwks_cache_ttl_seconds: int = Field(default=300, ge=1)
    """How long a fetched JWKS is trusted before it is fetched again."""
    jwks_min_refetch_seconds: int = Field(default=30, ge=0)
    """An unknown `kid` triggers a refetch at most this often (protects the IdP from floods)."""
    jwks_timeout_seconds: float = Field(default=5.0, gt=0)
    dev_key_dir: Path = DEFAULT_DEV_KEY_DIR
    max_token_bytes: int = Field(default=16 * 1024, ge=1024)
    """Longer bearer tokens are refused before any parsing."""

    @field_validator("audience", mode="before")
    @classmethod
    def _split_audience(cls, value: object) -> object:
        if value is None:
            return ()
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return tuple(json.loads(text))
            return tuple(part.strip() for part in text.split(",") if part.strip())
        return value

    @field_validator("environment", mode="before")
    @classmethod
    def _normalise_environment(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().lower()
            return {"dev": "development", "prod": "production"}.get(value, value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> AuthSettings:
        production = self.environment == "production"
        if self.mode == "disabled" and production:
            raise ValueError("AUTH_MODE=disabled is not allowed when SERVICE_ENV=production")
        if self.mode == "dev" and production:
            raise ValueError("AUTH_MODE=dev is not allowed when SERVICE_ENV=production; configure AUTH_MODE=jwt")
        if self.mode == "dev":
            # frozen model: fill the local defaults in place once, at validation time
            if self.issuer is None:
                object.__setattr__(self, "issuer", DEV_ISSUER)
            if not self.audience:
                object.__setattr__(self, "audience", (DEV_AUDIENCE,))
            if self.token_endpoint is None:
                object.__setattr__(self, "token_endpoint", DEV_TOKEN_ENDPOINT)
        if self.mode == "jwt":
            missing = [
                name
                for name, value in (
                    ("AUTH_ISSUER", self.issuer),
                    ("AUTH_AUDIENCE", self.audience),
                    ("AUTH_TOKEN_ENDPOINT", self.token_endpoint),
                )
                if not value
            ]
            if not (self.jwks_url or self.jwks_file):
                missing.append("AUTH_JWKS_URL or AUTH_JWKS_FILE")
            if missing:
                raise ValueError("AUTH_MODE=jwt requires " + ", ".join(missing))
            if self.jwks_url and self.jwks_file:
                raise ValueError("set only one of AUTH_JWKS_URL and AUTH_JWKS_FILE")
            if production and self.jwks_url and not self.jwks_url.startswith("https://"):
                raise ValueError("AUTH_JWKS_URL must be https:// in production")
        return self

    @property
    def is_production(self) -> bool:
        return self.environment == "production"
