"""Drop ix_fhir_search_token_value (param, system, value): every token search names its
resource type (service/store/fhir_search.py, `_token_condition`), so it is answered from
ix_fhir_search_token_type_value (resource_type, param, value), the patient index or the primary
key; this index was never read, and a session write paid ~34 entries in it
(docs/decisions/0011-request-path-costs.md).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_fhir_search_token_value", table_name="fhir_search_token")


def downgrade() -> None:
    op.create_index("ix_fhir_search_token_value", "fhir_search_token", ["param", "system", "value"])
