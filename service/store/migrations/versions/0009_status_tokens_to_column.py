"""Drop the `status` search tokens: every resource's status is already a column of its row
(`fhir_resource.status`), which `status` searches read; since this revision `status:not` reads
it too (service/store/fhir_search.py), and writes no longer index status twice (a session write
stored 7 of its 34 token rows, each with three index entries, for it;
docs/decisions/0011-request-path-costs.md, item 16).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM fhir_search_token WHERE param = 'status'")


def downgrade() -> None:
    # the tokens as the earlier code wrote them: (status, '', <code>) for every resource with one
    op.execute(
        "INSERT INTO fhir_search_token (resource_type, resource_id, param, system, value, patient_id) "
        "SELECT resource_type, id, 'status', '', status, patient_id FROM fhir_resource WHERE status IS NOT NULL"
    )
