"""The transactional outbox: one row per FHIR resource version written, appended in the same
transaction as the resource, so a committed change is never lost to the sync workers and an
uncommitted one is never sent.

Fan-out decision (docs/decisions/0001-store.md): this table is target-agnostic. Each sync
worker keeps its own per-target delivery state (last delivered `seq`, retries, dead letters)
in a table it owns, so adding an EHR target needs no change here and a slow target never
holds back another.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable

import sqlalchemy as sa
from sqlmodel import Session, col, select

from .repository import ResourceWrite
from .tables import OutboxRow


@dataclass(frozen=True)
class OutboxEntry:
    seq: int
    resource_type: str
    resource_id: str
    version_id: int
    deleted: bool
    patient_id: str | None
    clinic_id: str | None
    created_at: dt.datetime


class Outbox:
    """Append and read outbox rows (ordered by `seq`)."""

    def __init__(self, session: Session, clock: Callable[[], dt.datetime]) -> None:
        self._session = session
        self._clock = clock

    def append(self, write: ResourceWrite) -> None:
        self._session.add(
            OutboxRow(
                resource_type=write.resource_type,
                resource_id=write.id,
                version_id=write.version_id,
                deleted=write.deleted,
                patient_id=write.patient_id,
                clinic_id=write.clinic_id,
                created_at=self._clock(),
            )
        )

    def after(self, seq: int = 0, limit: int = 100) -> list[OutboxEntry]:
        """Entries with a sequence number above `seq`, oldest first."""
        self._session.flush()
        query = select(OutboxRow).where(col(OutboxRow.seq) > seq).order_by(col(OutboxRow.seq)).limit(limit)
        return [
            OutboxEntry(r.seq or 0, r.resource_type, r.resource_id, r.version_id, r.deleted, r.patient_id, r.clinic_id, r.created_at)
            for r in self._session.exec(query)
        ]

    def count(self) -> int:
        self._session.flush()
        return self._session.exec(select(sa.func.count()).select_from(OutboxRow)).one()
