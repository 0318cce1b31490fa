"""SQLModel table of FHIR Bulk Data `$export` jobs (migration 0005).

`fhir_export_job`: one row per kick-off request. `status` is accepted -> in-progress ->
completed | error (a cancelled job is deleted). `parameters` is the parsed request (JSON:
level, types, since); `output` the manifest entries once completed (JSON list of
{type, file, count}); `runner` / `heartbeat` the lease of the server process working on it
(a job whose heartbeat went stale is claimed again and restarted from scratch).
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from .tables import KEY, UTCDateTime


def _ts(nullable: bool = False) -> sa.Column:
    return sa.Column(UTCDateTime(), nullable=nullable)


class FhirExportJobRow(SQLModel, table=True):
    """One bulk export request and its state."""

    __tablename__ = "fhir_export_job"
    __table_args__ = (sa.Index("ix_fhir_export_job_status", "status", "created"),)

    id: str = Field(primary_key=True, max_length=64)
    request: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    """The kick-off request URL (echoed in the manifest)."""
    parameters: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    """JSON: {"level": "system" | "patient", "types": [...], "since": ISO instant | null}."""
    status: str = Field(max_length=16)
    created: dt.datetime = Field(sa_column=_ts())
    started: dt.datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    completed: dt.datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    transaction_time: dt.datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))
    clinic_id: str | None = Field(default=None, max_length=KEY)
    requester: str | None = Field(default=None, max_length=255)
    output: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))
    """JSON manifest entries [{"type", "file", "count"}] once completed."""
    progress: str | None = Field(default=None, max_length=255)
    runner: str | None = Field(default=None, max_length=64)
    heartbeat: dt.datetime | None = Field(default=None, sa_column=_ts(nullable=True))
