"""PostgreSQL: `fhir_version_conflict(resource_type, id, version_id)`, which raises a
unique violation naming a version already in the resource's history. The batched INSERT of
current resource rows calls it for any history row at or above the version being inserted
(repository._PG_INSERT_GUARDS), so a current version can never repeat or fall behind its
history. That invariant lets a record written for the first time skip reading its resources'
state (they are presumed new, at version 1): a wrong presumption - an id deleted before, with
a history - fails the write's one statement as a concurrent write would, and the use case
retries with the read (docs/decisions/0011, item 23). SQLite: nothing (it always reads).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30
"""

from __future__ import annotations

from service.store.migrations.guards import create_raising_function, drop_function

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_raising_function(
        "fhir_version_conflict", "resource_type text, id text, version_id integer",
        "resource %/% already has version % in its history: a current version must be above it",
        "resource_type, id, version_id", "unique_violation",
    )


def downgrade() -> None:
    drop_function("fhir_version_conflict", "text, text, integer")
