"""Audit trail: `audit_event` (service/store/audit.py), one FHIR AuditEvent per access to
patient data and per outbound transmission; not a FHIR resource row, so never in the outbox.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_event",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("recorded", sa.DateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=1), nullable=False),
        sa.Column("outcome", sa.String(length=2), nullable=False),
        sa.Column("subtype", sa.String(length=64), nullable=False),
        sa.Column("agent", sa.String(length=255), nullable=True),
        sa.Column("clinic_id", sa.String(length=64), nullable=True),
        sa.Column("patient_id", sa.String(length=64), nullable=True),
        sa.Column("json", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_event_recorded", "audit_event", ["recorded"])
    op.create_index("ix_audit_event_patient", "audit_event", ["patient_id", "recorded"])
    op.create_index("ix_audit_event_clinic", "audit_event", ["clinic_id", "recorded"])


def downgrade() -> None:
    op.drop_table("audit_event")
