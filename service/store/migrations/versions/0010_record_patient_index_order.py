"""Reorder ix_record_patient from (clinic_id, patient_key, kind) to (patient_key, clinic_id,
kind): the patient's records are still read from it (equality on patient and clinic, kind
optional), and it no longer competes with the primary key (kind, clinic_id, key) for the
write path's record probes. With clinic_id leading, a generic plan made while `record` had
never been analysed probed it on (clinic_id, kind) and filtered the key - every record of the
clinic, on every probe - instead of the primary key (docs/decisions/0011, item 19).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_record_patient", table_name="record")
    op.create_index("ix_record_patient", "record", ["patient_key", "clinic_id", "kind"])


def downgrade() -> None:
    op.drop_index("ix_record_patient", table_name="record")
    op.create_index("ix_record_patient", "record", ["clinic_id", "patient_key", "kind"])
