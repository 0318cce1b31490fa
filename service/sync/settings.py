"""Sync settings, read from `SYNC_*` environment variables (and `.env`), like `AuthSettings`.

One target can come from the environment (`SYNC_TARGET_URL` and friends); more are added
through the admin API (`/api/v1/sync/targets`) and live in the `sync_target` table. Worker
tuning (`SYNC_WORKER_*`, `SYNC_RETRY_*`, `SYNC_BREAKER_*`) has production defaults; tests
shorten them.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

AUTH_KINDS = ("none", "bearer", "basic", "smart")
ID_POLICIES = ("client", "server")


class SyncSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SYNC_", env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True)

    # the target from the environment
    target_name: str = "default"
    target_url: str | None = None
    target_auth: str = "none"
    target_token: SecretStr | None = None
    target_username: str | None = None
    target_password: SecretStr | None = None
    target_client_id: str | None = None
    target_token_url: str | None = None
    target_private_key_file: str | None = None
    target_key_id: str | None = None
    target_alg: str = "RS384"
    target_scope: str | None = None
    target_types: str = ""
    """Comma-separated resource types to send; empty = all."""
    target_id_policy: str = "client"
    target_max_in_flight: int = Field(default=4, ge=1, le=64)
    """Requests in flight to the target at once (per worker process, shared by its lanes)."""

    # the worker
    worker_concurrency: int = Field(default=4, ge=1, le=64)
    """Lanes per worker process: each claims and sends its own batch (partitions never overlap)."""
    worker_batch_items: int = Field(default=400, ge=1)
    worker_batch_partitions: int = Field(default=50, ge=1)
    worker_max_bundle_entries: int = Field(default=0, ge=0)
    """Cap on entries per transaction Bundle below the target's own limit (0 = the target's limit)."""
    worker_lease_seconds: float = Field(default=60.0, gt=0)
    worker_poll_seconds: float = Field(default=1.0, gt=0)
    worker_defer_seconds: float = Field(default=1.0, ge=0)
    worker_gap_timeout_seconds: float = Field(default=120.0, gt=0)
    worker_lock_stale_seconds: float = Field(default=60.0, gt=0)
    http_timeout_seconds: float = Field(default=30.0, gt=0)

    retry_base_seconds: float = Field(default=1.0, gt=0)
    retry_cap_seconds: float = Field(default=300.0, gt=0)
    retry_max_attempts: int = Field(default=25, ge=1)
    breaker_threshold: int = Field(default=5, ge=1)
    breaker_cooldown_seconds: float = Field(default=30.0, ge=0)

    @field_validator("target_auth")
    @classmethod
    def _auth_kind(cls, value: str) -> str:
        if value not in AUTH_KINDS:
            raise ValueError(f"SYNC_TARGET_AUTH must be one of {', '.join(AUTH_KINDS)}")
        return value

    @field_validator("target_id_policy")
    @classmethod
    def _id_policy(cls, value: str) -> str:
        if value not in ID_POLICIES:
            raise ValueError(f"SYNC_TARGET_ID_POLICY must be one of {', '.join(ID_POLICIES)}")
        return value

    @field_validator("target_alg")
    @classmethod
    def _alg(cls, value: str) -> str:
        if value not in ("RS384", "ES384"):
            raise ValueError("SYNC_TARGET_ALG must be RS384 or ES384")
        return value
