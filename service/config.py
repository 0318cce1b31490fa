"""Service settings, read from the environment (and a `.env` file) with pydantic-settings.

Every setting has a safe default so `python -m service serve` runs with nothing configured:
an embedded SQLite file under `<project root>/.local/`. Environment variable names are the
field names in upper case (e.g. `DATABASE_URL`, `BP_SYSTOLIC_THRESHOLD`).
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024


def default_database_url() -> str:
    """The embedded default: a SQLite file in `<project root>/.local/` (created on first use)."""
    return f"sqlite:///{PROJECT_ROOT / '.local' / 'ketamine.sqlite3'}"


def usable_cores() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one, as a
    container's cpuset sets it), not the host's count."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


class Settings(BaseSettings):
    """Runtime configuration of the service."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True)

    database_url: str = Field(default_factory=default_database_url)
    """SQLAlchemy URL: `sqlite:///path` or `postgresql+psycopg://user:pass@host/db`."""

    bp_systolic_threshold: int = Field(default=140, ge=80, le=250)
    """Pre-dose blood pressure above which a session is flagged (SPRAVATO label ~140/90)."""
    bp_diastolic_threshold: int = Field(default=90, ge=40, le=150)
    madrs_remission_threshold: int = Field(default=10, ge=0, le=60)
    """MADRS total at or below which a patient is in remission (Hawley 2002: 10; trials: 12)."""
    phq9_remission_below: int = Field(default=5, ge=1, le=27)

    max_record_bytes: int = Field(default=1 * MIB, ge=1024)
    """Largest accepted request body for single-record endpoints."""
    max_import_bytes: int = Field(default=50 * MIB, ge=1024)
    """Largest accepted request body for bulk imports."""

    log_level: str = "INFO"

    otel_telemetry: bool = False
    """FastAPI's OpenTelemetry request spans and metrics (OTEL_TELEMETRY=true), exported by the
    providers OpenTelemetry's own environment configures. Off by default, so a request does not
    even look for a provider. Its log records stay off either way: they carry exception
    messages, which can hold patient data (service/api/app.py, `telemetry_config`)."""

    write_concurrency: int = Field(default_factory=lambda: usable_cores(), ge=1, le=256)
    """Domain record writes (PUT/POST /api/v1/<kind>) running at once per worker process
    (default: one per core); more wait their turn (service/api/offload.py, `write_pool`). A
    write is a short CPU-bound transaction - one statement when its references are cached - and
    more of them in flight than the cores can run only add context switches, GIL hand-overs and
    lock waits inside PostgreSQL (docs/decisions/0011, items 20 and 25). Raise it when
    PostgreSQL runs on another machine, where each write also waits on the network."""

    rate_limit_per_minute: int = Field(default=600, ge=0)
    """Requests a minute per client (token subject, else client address); 0 switches it off.
    Over the limit: 429 with Retry-After."""
    rate_limit_burst: int | None = Field(default=None, ge=1)
    """Bucket size (default: the per-minute rate)."""

    payer_endpoints: dict[str, str] = Field(default_factory=dict)
    """Payer key -> FHIR base URL of its PAS endpoint (JSON object in PAYER_ENDPOINTS); a
    `PAYER_<KEY>_URL` variable wins over it, and it wins over mappings/payers/<key>.json."""

    validator_url: str | None = None
    """Base URL of a running HL7 validator (`fhir-validator.jar serve`) used by FHIR `$validate`
    for full profile validation, e.g. http://127.0.0.1:8089."""
    fhir_validate_with_hl7: bool = False
    """Start the HL7 validator in-process (a JVM, on first `$validate`) when VALIDATOR_URL is unset."""

    export_dir: Path = Field(default_factory=lambda: PROJECT_ROOT / ".local" / "exports")
    """Where FHIR bulk `$export` jobs write their NDJSON files (`<export_dir>/<job>/<Type>.ndjson`)."""

    @field_validator("database_url")
    @classmethod
    def _supported_backend(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("DATABASE_URL must be a sqlite:/// or postgresql+psycopg:// URL")
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            # psycopg 3 is the only PostgreSQL driver installed
            value = "postgresql+psycopg://" + value.split("://", 1)[1]
        return value


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return Settings()
