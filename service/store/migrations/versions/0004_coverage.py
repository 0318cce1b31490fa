"""Coverage workflows: prior-authorization requests, payer exchanges, REMS form submissions
(service/store/coverage_tables.py).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.store.migrations.column_types import TS, _s

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "coverage_request",
        sa.Column("id", _s(64), nullable=False),
        sa.Column("clinic_id", _s(64), nullable=False),
        sa.Column("patient_key", _s(64), nullable=False),
        sa.Column("coverage_key", _s(64), nullable=False),
        sa.Column("payer_key", _s(64), nullable=False),
        sa.Column("service", _s(32), nullable=False),
        sa.Column("certification_type", _s(8), nullable=False),
        sa.Column("status", _s(16), nullable=False),
        sa.Column("bundle_identifier", _s(64), nullable=False),
        sa.Column("replaces_id", _s(64), nullable=True),
        sa.Column("preauth_ref", _s(64), nullable=True),
        sa.Column("period_start", sa.Date(), nullable=True),
        sa.Column("period_end", sa.Date(), nullable=True),
        sa.Column("bundle", sa.LargeBinary(), nullable=False),
        sa.Column("decision", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_coverage_request_patient", "coverage_request", ["clinic_id", "patient_key", "created_at"])
    op.create_table(
        "coverage_exchange",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("request_id", _s(64), nullable=True),
        sa.Column("clinic_id", _s(64), nullable=False),
        sa.Column("patient_key", _s(64), nullable=False),
        sa.Column("operation", _s(16), nullable=False),
        sa.Column("url", _s(1000), nullable=False),
        sa.Column("request_json", sa.LargeBinary(), nullable=False),
        sa.Column("response_json", sa.LargeBinary(), nullable=True),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("outcome", _s(16), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("seq"),
    )
    op.create_index("ix_coverage_exchange_request", "coverage_exchange", ["request_id", "seq"])
    op.create_index("ix_coverage_exchange_patient", "coverage_exchange", ["clinic_id", "patient_key", "seq"])
    op.create_table(
        "rems_form_submission",
        sa.Column("clinic_id", _s(64), nullable=False),
        sa.Column("session_key", _s(64), nullable=False),
        sa.Column("submitted_on", sa.Date(), nullable=False),
        sa.Column("confirmation", _s(200), nullable=True),
        sa.Column("recorded_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("clinic_id", "session_key"),
    )


def downgrade() -> None:
    op.drop_table("rems_form_submission")
    op.drop_index("ix_coverage_exchange_patient", table_name="coverage_exchange")
    op.drop_index("ix_coverage_exchange_request", table_name="coverage_exchange")
    op.drop_table("coverage_exchange")
    op.drop_index("ix_coverage_request_patient", table_name="coverage_request")
    op.drop_table("coverage_request")
