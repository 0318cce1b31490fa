"""Sync delivery state: targets, per-target outbox cursor, per-resource delivery rows,
partition leases, id map, worker lock and counters (service/store/sync_tables.py).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.store.migrations.column_types import TS, _s

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sync_target",
        sa.Column("name", _s(64), nullable=False),
        sa.Column("base_url", _s(1000), nullable=False),
        sa.Column("auth", _s(16), nullable=False),
        sa.Column("id_policy", _s(16), nullable=False),
        sa.Column("resource_types", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("username", _s(255), nullable=True),
        sa.Column("client_id", _s(255), nullable=True),
        sa.Column("token_url", _s(1000), nullable=True),
        sa.Column("key_id", _s(255), nullable=True),
        sa.Column("alg", _s(16), nullable=True),
        sa.Column("scope", sa.Text(), nullable=True),
        sa.Column("private_key_file", _s(1000), nullable=True),
        sa.Column("secret", sa.Text(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "sync_cursor",
        sa.Column("target", _s(64), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("gaps", sa.Text(), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("target"),
    )
    op.create_table(
        "sync_delivery",
        sa.Column("target", _s(64), nullable=False),
        sa.Column("resource_type", _s(64), nullable=False),
        sa.Column("resource_id", _s(64), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("deleted", sa.Boolean(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("partition_key", _s(160), nullable=False),
        sa.Column("patient_id", _s(64), nullable=True),
        sa.Column("clinic_id", _s(64), nullable=True),
        sa.Column("status", _s(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TS, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("blocked_by", _s(160), nullable=True),
        sa.Column("target_id", _s(255), nullable=True),
        sa.Column("target_version", _s(64), nullable=True),
        sa.Column("sent_version_id", sa.Integer(), nullable=True),
        sa.Column("sent_at", TS, nullable=True),
        sa.Column("lease_owner", _s(64), nullable=True),
        sa.Column("lease_until", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("target", "resource_type", "resource_id"),
    )
    op.create_index("ix_sync_delivery_due", "sync_delivery", ["target", "status", "next_attempt_at"])
    op.create_index("ix_sync_delivery_partition", "sync_delivery", ["target", "partition_key", "seq"])
    op.create_index("ix_sync_delivery_patient", "sync_delivery", ["patient_id"])
    op.create_index("ix_sync_delivery_blocked", "sync_delivery", ["target", "blocked_by"])
    op.create_table(
        "sync_partition",
        sa.Column("target", _s(64), nullable=False),
        sa.Column("partition_key", _s(160), nullable=False),
        sa.Column("lease_owner", _s(64), nullable=True),
        sa.Column("lease_until", TS, nullable=True),
        sa.PrimaryKeyConstraint("target", "partition_key"),
    )
    op.create_table(
        "sync_id_map",
        sa.Column("target", _s(64), nullable=False),
        sa.Column("resource_type", _s(64), nullable=False),
        sa.Column("resource_id", _s(64), nullable=False),
        sa.Column("target_id", _s(255), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("target", "resource_type", "resource_id"),
    )
    op.create_table(
        "sync_worker_lock",
        sa.Column("name", _s(64), nullable=False),
        sa.Column("worker_id", _s(64), nullable=False),
        sa.Column("host", _s(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("heartbeat_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "sync_counter",
        sa.Column("target", _s(64), nullable=False),
        sa.Column("name", _s(64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("target", "name"),
    )


def downgrade() -> None:
    for table in ("sync_counter", "sync_worker_lock", "sync_id_map", "sync_partition"):
        op.drop_table(table)
    for index in ("ix_sync_delivery_blocked", "ix_sync_delivery_patient", "ix_sync_delivery_partition", "ix_sync_delivery_due"):
        op.drop_index(index, table_name="sync_delivery")
    for table in ("sync_delivery", "sync_cursor", "sync_target"):
        op.drop_table(table)
