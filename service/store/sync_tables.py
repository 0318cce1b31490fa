"""SQLModel tables of the sync worker (EHR delivery state), created by migration 0002.

- `sync_target`: EHR targets configured through the admin API (secrets are write-only: the
  API never returns them). A target from the environment (`SYNC_TARGET_*`) is not stored.
- `sync_cursor`: per target, the outbox `seq` below which every row has been taken into
  `sync_delivery`, plus the open gaps above it (seqs allocated by transactions not yet
  committed, or rolled back), so a late commit is never skipped.
- `sync_delivery`: one row per (target, resource): the newest version to deliver, its status
  (pending | sending | sent | retrying | dead), attempts, next attempt, last error, the
  target's id and version of what was sent. One row per resource (not per version) is how
  coalescing works: a newer version replaces an older one that was not sent yet.
- `sync_partition`: the lease on one (target, partition) — a patient, or a clinic's shared
  resources — so exactly one worker sends a patient's resources at a time, in order.
- `sync_id_map`: our resource id -> the target's id, for targets that assign their own ids.
- `sync_worker_lock`: the SQLite single-worker lock row (with heartbeat and pid).
- `sync_counter`: monotonic counters per target (sent, retried, dead, ...) for metrics.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from .tables import KEY, UTCDateTime

NAME = 64


def _ts(nullable: bool = False) -> sa.Column:
    return sa.Column(UTCDateTime(), nullable=nullable)


class SyncTargetRow(SQLModel, table=True):
    """An EHR target added through the admin API."""

    __tablename__ = "sync_target"

    name: str = Field(primary_key=True, max_length=NAME)
    base_url: str = Field(max_length=1000)
    auth: str = Field(default="none", max_length=16)
    """none | bearer | basic | smart"""
    id_policy: str = Field(default="client", max_length=16)
    """client (PUT to our ids) | server (the target assigns ids; conditional update)"""
    resource_types: str = Field(default="", sa_column=sa.Column(sa.Text(), nullable=False))
    """Comma-separated resource types to send; empty = all."""
    enabled: bool = Field(default=True, nullable=False)
    username: str | None = Field(default=None, max_length=255)
    client_id: str | None = Field(default=None, max_length=255)
    token_url: str | None = Field(default=None, max_length=1000)
    key_id: str | None = Field(default=None, max_length=255)
    alg: str | None = Field(default=None, max_length=16)
    scope: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))
    private_key_file: str | None = Field(default=None, max_length=1000)
    secret: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))
    """Bearer token, basic password or SMART private key (PEM). Never returned by the API."""
    created_at: dt.datetime = Field(sa_column=_ts())
    updated_at: dt.datetime = Field(sa_column=_ts())


class SyncCursorRow(SQLModel, table=True):
    """How far a target has taken the outbox into `sync_delivery`."""

    __tablename__ = "sync_cursor"

    target: str = Field(primary_key=True, max_length=NAME)
    last_seq: int = Field(default=0, sa_column=sa.Column(sa.BigInteger(), nullable=False))
    gaps: str = Field(default="[]", sa_column=sa.Column(sa.Text(), nullable=False))
    """JSON list of [seq, first_seen_epoch] for seqs below last_seq not seen yet."""
    updated_at: dt.datetime = Field(sa_column=_ts())


class SyncDeliveryRow(SQLModel, table=True):
    """The delivery state of one resource to one target (its newest version)."""

    __tablename__ = "sync_delivery"
    __table_args__ = (
        sa.Index("ix_sync_delivery_due", "target", "status", "next_attempt_at"),
        sa.Index("ix_sync_delivery_partition", "target", "partition_key", "seq"),
        sa.Index("ix_sync_delivery_patient", "patient_id"),
        sa.Index("ix_sync_delivery_blocked", "target", "blocked_by"),
    )

    target: str = Field(primary_key=True, max_length=NAME)
    resource_type: str = Field(primary_key=True, max_length=64)
    resource_id: str = Field(primary_key=True, max_length=64)
    version_id: int = Field(nullable=False)
    deleted: bool = Field(default=False, nullable=False)
    seq: int = Field(sa_column=sa.Column(sa.BigInteger(), nullable=False))
    partition_key: str = Field(max_length=160)
    patient_id: str | None = Field(default=None, max_length=64)
    clinic_id: str | None = Field(default=None, max_length=KEY)
    status: str = Field(max_length=16)
    attempts: int = Field(default=0, nullable=False)
    next_attempt_at: dt.datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    last_error: str | None = Field(default=None, sa_column=sa.Column(sa.Text(), nullable=True))
    blocked_by: str | None = Field(default=None, max_length=160)
    target_id: str | None = Field(default=None, max_length=255)
    target_version: str | None = Field(default=None, max_length=64)
    sent_version_id: int | None = Field(default=None, nullable=True)
    sent_at: dt.datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    lease_owner: str | None = Field(default=None, max_length=NAME)
    lease_until: dt.datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    created_at: dt.datetime = Field(sa_column=_ts())
    updated_at: dt.datetime = Field(sa_column=_ts())


class SyncPartitionRow(SQLModel, table=True):
    """The lease on one partition (a patient, or a clinic's shared resources) of a target."""

    __tablename__ = "sync_partition"

    target: str = Field(primary_key=True, max_length=NAME)
    partition_key: str = Field(primary_key=True, max_length=160)
    lease_owner: str | None = Field(default=None, max_length=NAME)
    lease_until: dt.datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class SyncIdMapRow(SQLModel, table=True):
    """Our resource id -> the id a target assigned (targets with id_policy=server)."""

    __tablename__ = "sync_id_map"

    target: str = Field(primary_key=True, max_length=NAME)
    resource_type: str = Field(primary_key=True, max_length=64)
    resource_id: str = Field(primary_key=True, max_length=64)
    target_id: str = Field(max_length=255)
    updated_at: dt.datetime = Field(sa_column=_ts())


class SyncWorkerLockRow(SQLModel, table=True):
    """A named lock held by one worker process (SQLite: only one worker at a time)."""

    __tablename__ = "sync_worker_lock"

    name: str = Field(primary_key=True, max_length=NAME)
    worker_id: str = Field(max_length=NAME)
    host: str = Field(max_length=255)
    pid: int = Field(nullable=False)
    heartbeat_at: dt.datetime = Field(sa_column=_ts())


class SyncCounterRow(SQLModel, table=True):
    """A monotonic counter per target (sent, retried, dead, deferred, ...)."""

    __tablename__ = "sync_counter"

    target: str = Field(primary_key=True, max_length=NAME)
    name: str = Field(primary_key=True, max_length=64)
    value: int = Field(default=0, sa_column=sa.Column(sa.BigInteger(), nullable=False))
