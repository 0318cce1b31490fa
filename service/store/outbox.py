"""The transactional outbox: one row per FHIR resource version written, appended in the same
transaction as the resource, so a committed change is never lost to the sync workers and an
uncommitted one is never sent.

Fan-out decision (docs/decisions/0001-store.md): this table is target-agnostic. Each sync
worker keeps its own per-target delivery state (last delivered `seq`, retries, dead letters)
in a table it owns, so adding an EHR target needs no change here and a slow target never
holds back another.

Rows appended are inserted when the outbox is flushed: `flush()` (called by the unit of work
before it commits, and by `after`/`count`), one INSERT for all of a transaction's rows, in
append order (so `seq` follows it). In a unit of work they join its write-behind
(service/store/write_behind.py) and go out in the same statement as the transaction's other
INSERTs. Without `batched=True` (an Outbox built on a
plain Session outside a unit of work) each row is added to the session as an ORM object and
inserted by the session's next flush or commit, as before.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable

import sqlalchemy as sa

from .repository import ResourceWrite, insert_rows
from .sessions import StoreSession
from .tables import OutboxRow

_OUTBOX: sa.Table = OutboxRow.__table__  # type: ignore[attr-defined]


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

    def __init__(
        self, session: StoreSession, clock: Callable[[], dt.datetime], *, batched: bool = False, write_behind: Any = None
    ) -> None:
        self._session = session
        self._clock = clock
        self._batched = batched
        self._write_behind = write_behind
        self._pending: list[dict] = []

    def append(self, write: ResourceWrite) -> None:
        row = {
            "resource_type": write.resource_type,
            "resource_id": write.id,
            "version_id": write.version_id,
            "deleted": write.deleted,
            "patient_id": write.patient_id,
            "clinic_id": write.clinic_id,
            "created_at": self._clock(),
        }
        if self._batched:
            self._pending.append(row)
        else:
            self._session.add(OutboxRow(**row))

    def flush(self) -> None:
        """Insert the rows appended so far (one statement), or hand them to the unit of work's
        write-behind (`write_behind`, service/store/write_behind.py) when it has one."""
        if self._pending:
            rows, self._pending = self._pending, []
            if self._write_behind is not None:
                self._write_behind.add([(_OUTBOX, rows)])
            else:
                insert_rows(self._session.connection(), [(_OUTBOX, rows)])

    def discard(self) -> None:
        """Forget rows appended but not flushed (the transaction is rolled back)."""
        self._pending = []

    def after(self, seq: int = 0, limit: int = 100) -> list[OutboxEntry]:
        """Entries with a sequence number above `seq`, oldest first."""
        self.flush()
        self._session.flush()
        o = _OUTBOX.c
        query = (
            sa.select(o.seq, o.resource_type, o.resource_id, o.version_id, o.deleted, o.patient_id, o.clinic_id, o.created_at)
            .where(o.seq > seq)
            .order_by(o.seq)
            .limit(limit)
        )
        return [OutboxEntry(r[0] or 0, r[1], r[2], r[3], r[4], r[5], r[6], r[7]) for r in self._session.connection().execute(query)]

    def count(self) -> int:
        self.flush()
        self._session.flush()
        return int(self._session.connection().execute(sa.select(sa.func.count()).select_from(_OUTBOX)).scalar_one())
