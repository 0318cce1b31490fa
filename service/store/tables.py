"""SQLModel table definitions (the schema; the Alembic migrations create exactly this).

Layout (docs/decisions/0001-store.md):
- `record` / `record_version`: domain records as validated canonical JSON documents, with
  every version kept for audit.
- `fhir_resource` / `fhir_resource_history` / `fhir_search_token`: the current FHIR JSON of
  each resource plus search columns, earlier versions (and deletions), and multi-valued
  token search parameters.
- `outbox`: one row per FHIR resource version written, in commit order, for sync workers.
- `idempotency_key`: stored responses of POSTs sent with an `Idempotency-Key` header.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware timestamp stored in UTC; SQLite gets its offset back on read."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(dt.timezone.utc)

    def process_result_value(self, value: dt.datetime | None, dialect: sa.Dialect) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)


metadata = SQLModel.metadata

KEY = 64  # RecordKey max length
KIND = 40


def _ts(nullable: bool = False) -> sa.Column:
    return sa.Column(UTCDateTime(), nullable=nullable)


class RecordRow(SQLModel, table=True):
    """The current version of one domain record, keyed by (kind, clinic, key)."""

    __tablename__ = "record"
    __table_args__ = (sa.Index("ix_record_patient", "patient_key", "clinic_id", "kind"),)

    kind: str = Field(primary_key=True, max_length=KIND)
    clinic_id: str = Field(primary_key=True, max_length=KEY)
    key: str = Field(primary_key=True, max_length=KEY)
    patient_key: str | None = Field(default=None, max_length=KEY)
    data: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    version: int = Field(nullable=False)
    content_hash: str = Field(max_length=64)
    created_at: dt.datetime = Field(sa_column=_ts())
    updated_at: dt.datetime = Field(sa_column=_ts())


class RecordVersionRow(SQLModel, table=True):
    """Every version of every record (the audit trail), including the current one."""

    __tablename__ = "record_version"
    __table_args__ = (
        sa.ForeignKeyConstraint(
            ["kind", "clinic_id", "key"], ["record.kind", "record.clinic_id", "record.key"], name="fk_record_version_record"
        ),
    )

    kind: str = Field(primary_key=True, max_length=KIND)
    clinic_id: str = Field(primary_key=True, max_length=KEY)
    key: str = Field(primary_key=True, max_length=KEY)
    version: int = Field(primary_key=True, sa_type=sa.Integer, sa_column_kwargs={"autoincrement": False})
    data: str = Field(sa_column=sa.Column(sa.Text(), nullable=False))
    content_hash: str = Field(max_length=64)
    recorded_at: dt.datetime = Field(sa_column=_ts())


class FhirResourceRow(SQLModel, table=True):
    """The current version of one FHIR resource: canonical JSON plus search columns."""

    __tablename__ = "fhir_resource"
    __table_args__ = (
        sa.Index("ix_fhir_resource_patient", "patient_id", "resource_type", "date_start"),
        sa.Index("ix_fhir_resource_type_date", "resource_type", "date_start"),
        sa.Index("ix_fhir_resource_last_updated", "resource_type", "last_updated"),
        sa.Index("ix_fhir_resource_last_updated_all", "last_updated"),
        sa.Index("ix_fhir_resource_clinic", "clinic_id", "resource_type"),
        sa.Index("ix_fhir_resource_type_date_end", "resource_type", "date_end"),  # FHIR date search (0002)
        sa.Index("ix_fhir_resource_source", "source_kind", "source_clinic_id", "source_key"),
    )

    resource_type: str = Field(primary_key=True, max_length=64)
    id: str = Field(primary_key=True, max_length=64)
    version_id: int = Field(nullable=False)
    last_updated: dt.datetime = Field(sa_column=_ts())
    json_bytes: bytes = Field(sa_column=sa.Column("json", sa.LargeBinary(), nullable=False))
    content_hash: str = Field(max_length=64)
    """SHA-256 of the canonical JSON without meta.versionId/lastUpdated (idempotent writes)."""
    patient_id: str | None = Field(default=None, max_length=64)
    clinic_id: str | None = Field(default=None, max_length=KEY)
    status: str | None = Field(default=None, max_length=64)
    date_start: dt.datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    date_end: dt.datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    source_kind: str | None = Field(default=None, max_length=KIND)
    source_clinic_id: str | None = Field(default=None, max_length=KEY)
    source_key: str | None = Field(default=None, max_length=KEY)


class FhirResourceHistoryRow(SQLModel, table=True):
    """Earlier versions of a resource (and deletion tombstones). The current version lives
    only in `fhir_resource`, so each version's JSON is stored once."""

    __tablename__ = "fhir_resource_history"

    resource_type: str = Field(primary_key=True, max_length=64)
    id: str = Field(primary_key=True, max_length=64)
    version_id: int = Field(primary_key=True, sa_type=sa.Integer, sa_column_kwargs={"autoincrement": False})
    last_updated: dt.datetime = Field(sa_column=_ts())
    json_bytes: bytes | None = Field(default=None, sa_column=sa.Column("json", sa.LargeBinary(), nullable=True))
    deleted: bool = Field(default=False, nullable=False)


class FhirSearchTokenRow(SQLModel, table=True):
    """One token search value (code, identifier, category, status, ...) of a current resource."""

    __tablename__ = "fhir_search_token"
    __table_args__ = (
        # (param, system, value) was dropped in migration 0008: every token search names its type
        sa.Index("ix_fhir_search_token_type_value", "resource_type", "param", "value"),
        # one patient's tokens side by side: Observation?patient=&code= reads a leaf page or two
        # instead of probing the primary key once per Observation of the patient (0007)
        sa.Index("ix_fhir_search_token_patient", "patient_id", "resource_type", "param", "value", "system", "resource_id"),
    )

    resource_type: str = Field(primary_key=True, max_length=64)
    resource_id: str = Field(primary_key=True, max_length=64)
    param: str = Field(primary_key=True, max_length=64)
    system: str = Field(primary_key=True, max_length=255)
    """'' when the token has no system (e.g. status)."""
    value: str = Field(primary_key=True, max_length=255)
    patient_id: str | None = Field(default=None, max_length=64)
    """The resource's patient (fhir_resource.patient_id, copied; migration 0007)."""


class OutboxRow(SQLModel, table=True):
    """One FHIR resource version written (or deleted), in commit order, for sync workers."""

    __tablename__ = "outbox"
    __table_args__ = (sa.Index("ix_outbox_patient", "patient_id", "seq"),)

    seq: int | None = Field(
        default=None,
        sa_column=sa.Column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
    )
    resource_type: str = Field(max_length=64)
    resource_id: str = Field(max_length=64)
    version_id: int = Field(nullable=False)
    deleted: bool = Field(default=False, nullable=False)
    patient_id: str | None = Field(default=None, max_length=64)
    clinic_id: str | None = Field(default=None, max_length=KEY)
    created_at: dt.datetime = Field(sa_column=_ts())


class IdempotencyKeyRow(SQLModel, table=True):
    """The stored outcome of a request sent with an `Idempotency-Key` header."""

    __tablename__ = "idempotency_key"

    key: str = Field(primary_key=True, max_length=255)
    scope: str = Field(primary_key=True, max_length=255)
    """Clinic and route, e.g. 'clinic-1|POST /api/v1/patients'."""
    request_hash: str = Field(max_length=64)
    status: str = Field(max_length=32)
    body: bytes = Field(sa_column=sa.Column(sa.LargeBinary(), nullable=False))
    created_at: dt.datetime = Field(sa_column=_ts())
