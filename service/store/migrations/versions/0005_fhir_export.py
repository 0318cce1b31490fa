"""FHIR Bulk Data $export jobs (service/store/export_tables.py).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.store.migrations.column_types import TS

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fhir_export_job",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("parameters", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created", TS, nullable=False),
        sa.Column("started", TS, nullable=True),
        sa.Column("completed", TS, nullable=True),
        sa.Column("transaction_time", TS, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("clinic_id", sa.String(length=64), nullable=True),
        sa.Column("requester", sa.String(length=255), nullable=True),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("progress", sa.String(length=255), nullable=True),
        sa.Column("runner", sa.String(length=64), nullable=True),
        sa.Column("heartbeat", TS, nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_fhir_export_job_status", "fhir_export_job", ["status", "created"])


def downgrade() -> None:
    op.drop_index("ix_fhir_export_job_status", table_name="fhir_export_job")
    op.drop_table("fhir_export_job")
