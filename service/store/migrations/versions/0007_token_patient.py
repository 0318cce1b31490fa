"""fhir_search_token.patient_id (a copy of the resource's) and ix_fhir_search_token_patient:
`Observation?patient=&code=` at a million resources probed the token primary key once per
Observation of the patient (random leaf pages of a 700 MB index); with the patient's tokens
side by side it reads a page or two (benchmarks/results/fhir_search.md).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("fhir_search_token", sa.Column("patient_id", sa.String(length=64), nullable=True))
    op.execute(
        "UPDATE fhir_search_token SET patient_id = ("
        " SELECT r.patient_id FROM fhir_resource r"
        " WHERE r.resource_type = fhir_search_token.resource_type AND r.id = fhir_search_token.resource_id)"
    )
    op.create_index(
        "ix_fhir_search_token_patient", "fhir_search_token",
        ["patient_id", "resource_type", "param", "value", "system", "resource_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_fhir_search_token_patient", table_name="fhir_search_token")
    op.drop_column("fhir_search_token", "patient_id")
