"""PostgreSQL: `record_changed(kind, clinic_id, key)`, which raises a serialization failure
naming a domain record whose current version is no longer the one a write relied on. A record
write that took its referenced records from the process's cache (service/store/record_cache.py)
sends their versions with its INSERT, which calls this for any of them that changed; the unit
of work reports a concurrent write and the use case retries with a read (docs/decisions/0011,
item 24). SQLite: nothing (it always reads).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30
"""

from __future__ import annotations

from service.store.migrations.guards import create_raising_function, drop_function

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_raising_function(
        "record_changed", "kind text, clinic_id text, key text",
        "record %/%/% changed since it was read",
        "kind, clinic_id, key", "serialization_failure",
    )


def downgrade() -> None:
    drop_function("record_changed", "text, text, text")
