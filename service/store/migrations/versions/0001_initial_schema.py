"""Initial schema: records with versions, FHIR resources with history and search tokens,
outbox, idempotency keys.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.store.migrations.column_types import TS, _s

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "record",
        sa.Column("kind", _s(40), nullable=False),
        sa.Column("clinic_id", _s(64), nullable=False),
        sa.Column("key", _s(64), nullable=False),
        sa.Column("patient_key", _s(64), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("content_hash", _s(64), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("kind", "clinic_id", "key"),
    )
    op.create_index("ix_record_patient", "record", ["clinic_id", "patient_key", "kind"])

    op.create_table(
        "record_version",
        sa.Column("kind", _s(40), nullable=False),
        sa.Column("clinic_id", _s(64), nullable=False),
        sa.Column("key", _s(64), nullable=False),
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("content_hash", _s(64), nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.ForeignKeyConstraint(
            ["kind", "clinic_id", "key"],
            ["record.kind", "record.clinic_id", "record.key"],
            name="fk_record_version_record",
        ),
        sa.PrimaryKeyConstraint("kind", "clinic_id", "key", "version"),
    )

    op.create_table(
        "fhir_resource",
        sa.Column("resource_type", _s(64), nullable=False),
        sa.Column("id", _s(64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("last_updated", TS, nullable=False),
        sa.Column("json", sa.LargeBinary(), nullable=False),
        sa.Column("content_hash", _s(64), nullable=False),
        sa.Column("patient_id", _s(64), nullable=True),
        sa.Column("clinic_id", _s(64), nullable=True),
        sa.Column("status", _s(64), nullable=True),
        sa.Column("date_start", TS, nullable=True),
        sa.Column("date_end", TS, nullable=True),
        sa.Column("source_kind", _s(40), nullable=True),
        sa.Column("source_clinic_id", _s(64), nullable=True),
        sa.Column("source_key", _s(64), nullable=True),
        sa.PrimaryKeyConstraint("resource_type", "id"),
    )
    op.create_index("ix_fhir_resource_patient", "fhir_resource", ["patient_id", "resource_type", "date_start"])
    op.create_index("ix_fhir_resource_type_date", "fhir_resource", ["resource_type", "date_start"])
    op.create_index("ix_fhir_resource_last_updated", "fhir_resource", ["resource_type", "last_updated"])
    op.create_index("ix_fhir_resource_last_updated_all", "fhir_resource", ["last_updated"])
    op.create_index("ix_fhir_resource_clinic", "fhir_resource", ["clinic_id", "resource_type"])
    op.create_index("ix_fhir_resource_source", "fhir_resource", ["source_kind", "source_clinic_id", "source_key"])

    op.create_table(
        "fhir_resource_history",
        sa.Column("resource_type", _s(64), nullable=False),
        sa.Column("id", _s(64), nullable=False),
        sa.Column("version_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_updated", TS, nullable=False),
        sa.Column("json", sa.LargeBinary(), nullable=True),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("resource_type", "id", "version_id"),
    )

    op.create_table(
        "fhir_search_token",
        sa.Column("resource_type", _s(64), nullable=False),
        sa.Column("resource_id", _s(64), nullable=False),
        sa.Column("param", _s(64), nullable=False),
        sa.Column("system", _s(255), nullable=False),
        sa.Column("value", _s(255), nullable=False),
        sa.PrimaryKeyConstraint("resource_type", "resource_id", "param", "system", "value"),
    )
    op.create_index("ix_fhir_search_token_value", "fhir_search_token", ["param", "system", "value"])
    op.create_index("ix_fhir_search_token_type_value", "fhir_search_token", ["resource_type", "param", "value"])

    op.create_table(
        "outbox",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("resource_type", _s(64), nullable=False),
        sa.Column("resource_id", _s(64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("patient_id", _s(64), nullable=True),
        sa.Column("clinic_id", _s(64), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ix_outbox_patient", "outbox", ["patient_id", "seq"])

    op.create_table(
        "idempotency_key",
        sa.Column("key", _s(255), nullable=False),
        sa.Column("scope", _s(255), nullable=False),
        sa.Column("request_hash", _s(64), nullable=False),
        sa.Column("status", _s(32), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("key", "scope"),
    )


def downgrade() -> None:
    op.drop_table("idempotency_key")
    op.drop_index("ix_outbox_patient", table_name="outbox")
    op.drop_table("outbox")
    op.drop_index("ix_fhir_search_token_type_value", table_name="fhir_search_token")
    op.drop_index("ix_fhir_search_token_value", table_name="fhir_search_token")
    op.drop_table("fhir_search_token")
    op.drop_table("fhir_resource_history")
    for name in (
        "ix_fhir_resource_source",
        "ix_fhir_resource_clinic",
        "ix_fhir_resource_last_updated_all",
        "ix_fhir_resource_last_updated",
        "ix_fhir_resource_type_date",
        "ix_fhir_resource_patient",
    ):
        op.drop_index(name, table_name="fhir_resource")
    op.drop_table("fhir_resource")
    op.drop_table("record_version")
    op.drop_index("ix_record_patient", table_name="record")
    op.drop_table("record")
