"""Tables of the coverage workflows (migration 0004_coverage):

- `coverage_request`: one prior-authorization request (PAS) per row with its request Bundle,
  its current status and the latest decision (authorized items, units, period, reasons).
- `coverage_exchange`: every HTTP exchange with a payer (eligibility, $submit, $inquire):
  request and response JSON, HTTP status, interpreted outcome. Nothing is ever overwritten.
- `rems_form_submission`: when the SPRAVATO REMS Patient Monitoring Form of a session was
  submitted (the deadline itself is derived: session date + 7 days).
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from .tables import KEY, UTCDateTime


def _ts(nullable: bool = False) -> sa.Column:
    return sa.Column(UTCDateTime(), nullable=nullable)


class CoverageRequestRow(SQLModel, table=True):
    __tablename__ = "coverage_request"
    __table_args__ = (sa.Index("ix_coverage_request_patient", "clinic_id", "patient_key", "created_at"),)

    id: str = Field(primary_key=True, max_length=64)
    clinic_id: str = Field(max_length=KEY)
    patient_key: str = Field(max_length=KEY)
    coverage_key: str = Field(max_length=KEY)
    payer_key: str = Field(max_length=64)
    service: str = Field(max_length=32)
    certification_type: str = Field(max_length=8)
    status: str = Field(max_length=16)
    bundle_identifier: str = Field(max_length=64)
    replaces_id: str | None = Field(default=None, max_length=64)
    preauth_ref: str | None = Field(default=None, max_length=64)
    period_start: dt.date | None = Field(default=None, sa_column=sa.Column(sa.Date(), nullable=True))
    period_end: dt.date | None = Field(default=None, sa_column=sa.Column(sa.Date(), nullable=True))
    bundle: bytes = Field(sa_column=sa.Column(sa.LargeBinary(), nullable=False))
    decision: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))
    created_at: dt.datetime = Field(sa_column=_ts())
    updated_at: dt.datetime = Field(sa_column=_ts())


class CoverageExchangeRow(SQLModel, table=True):
    __tablename__ = "coverage_exchange"
    __table_args__ = (
        sa.Index("ix_coverage_exchange_request", "request_id", "seq"),
        sa.Index("ix_coverage_exchange_patient", "clinic_id", "patient_key", "seq"),
    )

    seq: int | None = Field(
        default=None,
        sa_column=sa.Column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    )
    request_id: str | None = Field(default=None, max_length=64)
    clinic_id: str = Field(max_length=KEY)
    patient_key: str = Field(max_length=KEY)
    operation: str = Field(max_length=16)
    url: str = Field(max_length=1000)
    request_json: bytes = Field(sa_column=sa.Column(sa.LargeBinary(), nullable=False))
    response_json: bytes | None = Field(default=None, sa_column=sa.Column(sa.LargeBinary(), nullable=True))
    http_status: int | None = Field(default=None)
    outcome: str | None = Field(default=None, max_length=16)
    error: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))
    created_at: dt.datetime = Field(sa_column=_ts())


class RemsFormSubmissionRow(SQLModel, table=True):
    __tablename__ = "rems_form_submission"

    clinic_id: str = Field(primary_key=True, max_length=KEY)
    session_key: str = Field(primary_key=True, max_length=KEY)
    submitted_on: dt.date = Field(sa_column=sa.Column(sa.Date(), nullable=False))
    confirmation: str | None = Field(default=None, max_length=200)
    recorded_at: dt.datetime = Field(sa_column=_ts())
