"""Store side of FHIR Bulk Data `$export`: the job table (with a lease, so a job is worked on
by one server process and restarted when that process dies) and the resource stream.

`ExportJobStore.stream(...)` reads the matching current resources as (resource_type, stored
JSON bytes) in batches of `batch_size` rows from ONE query in ONE read transaction (a
consistent snapshot: REPEATABLE READ on PostgreSQL, the WAL read snapshot on SQLite) through
a server-side cursor (`stream_results` + `yield_per`: psycopg names the cursor and fetches
`batch_size` rows per round trip), so memory is bounded by one batch whatever the export size.
There is no ORDER BY: PostgreSQL answers with a sequential (or `last_updated` index) scan and
the caller routes each row to its type's file.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import sqlalchemy as sa
from sqlalchemy import Engine

from .export_tables import FhirExportJobRow
from .tables import FhirResourceRow

Clock = Callable[[], dt.datetime]
_JOB: sa.Table = FhirExportJobRow.__table__  # type: ignore[attr-defined]
_RES: sa.Table = FhirResourceRow.__table__  # type: ignore[attr-defined]
ACTIVE = ("accepted", "in-progress")


@dataclass(frozen=True)
class ExportJob:
    id: str
    request: str
    parameters: str
    status: str
    created: dt.datetime
    started: dt.datetime | None
    completed: dt.datetime | None
    transaction_time: dt.datetime | None
    error: str | None
    clinic_id: str | None
    requester: str | None
    output: str | None
    progress: str | None
    runner: str | None
    heartbeat: dt.datetime | None


_JOB_COLUMNS = tuple(_JOB.c[name] for name in ExportJob.__dataclass_fields__)


def _job(row: sa.Row) -> ExportJob:
    return ExportJob(*row)


class ExportJobStore:
    """Export jobs and the resource stream, on an engine (each call its own short transaction;
    the runner thread cannot share a request's unit of work)."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    # ------------------------------------------------------------------ jobs

    def create(
        self, job_id: str, *, request: str, parameters: str, clinic_id: str | None, requester: str | None
    ) -> ExportJob:
        now = self._clock()
        with self._engine.begin() as connection:
            connection.execute(
                sa.insert(_JOB),
                {"id": job_id, "request": request, "parameters": parameters, "status": "accepted", "created": now,
                 "clinic_id": clinic_id, "requester": requester},
            )
        found = self.get(job_id)
        assert found is not None
        return found

    def get(self, job_id: str) -> ExportJob | None:
        with self._engine.connect() as connection:
            row = connection.execute(sa.select(*_JOB_COLUMNS).where(_JOB.c.id == job_id)).first()
        return _job(row) if row is not None else None

    def delete(self, job_id: str) -> bool:
        with self._engine.begin() as connection:
            return connection.execute(sa.delete(_JOB).where(_JOB.c.id == job_id)).rowcount == 1

    def claim(self, runner: str, *, stale_before: dt.datetime) -> ExportJob | None:
        """Take the oldest job that is accepted, or in progress with a heartbeat older than
        `stale_before` (its process died): status in-progress, lease to `runner`. The UPDATE
        re-checks the condition, so two processes never both win a job."""
        claimable = sa.and_(
            _JOB.c.status.in_(ACTIVE),
            sa.or_(_JOB.c.heartbeat.is_(None), _JOB.c.heartbeat < stale_before),
        )
        with self._engine.connect() as connection:
            candidates = list(
                connection.execute(sa.select(_JOB.c.id).where(claimable).order_by(_JOB.c.created).limit(5)).scalars()
            )
        for job_id in candidates:
            now = self._clock()
            with self._engine.begin() as connection:
                won = connection.execute(
                    sa.update(_JOB)
                    .where(_JOB.c.id == job_id, claimable)
                    .values(status="in-progress", runner=runner, heartbeat=now, started=now, progress="starting")
                ).rowcount
            if won == 1:
                return self.get(job_id)
        return None

    def heartbeat(self, job_id: str, runner: str, progress: str) -> bool:
        """Renew the lease; False when the job was cancelled (deleted) or taken over."""
        with self._engine.begin() as connection:
            return connection.execute(
                sa.update(_JOB)
                .where(_JOB.c.id == job_id, _JOB.c.runner == runner, _JOB.c.status == "in-progress")
                .values(heartbeat=self._clock(), progress=progress[:255])
            ).rowcount == 1

    def finish(self, job_id: str, runner: str, *, output: str, transaction_time: dt.datetime) -> bool:
        with self._engine.begin() as connection:
            return connection.execute(
                sa.update(_JOB)
                .where(_JOB.c.id == job_id, _JOB.c.runner == runner, _JOB.c.status == "in-progress")
                .values(status="completed", output=output, transaction_time=transaction_time, completed=self._clock(),
                        progress="completed", heartbeat=self._clock())
            ).rowcount == 1

    def fail(self, job_id: str, runner: str, error: str) -> bool:
        with self._engine.begin() as connection:
            return connection.execute(
                sa.update(_JOB)
                .where(_JOB.c.id == job_id, _JOB.c.runner == runner, _JOB.c.status == "in-progress")
                .values(status="error", error=error, completed=self._clock(), progress="error")
            ).rowcount == 1

    # ------------------------------------------------------------------ resources

    def stream(
        self,
        types: Sequence[str],
        *,
        patient_compartment: bool = False,
        since: dt.datetime | None = None,
        clinic_id: str | None = None,
        patient_id: str | None = None,
        batch_size: int = 5000,
    ) -> Iterator[Sequence[tuple[str, bytes]]]:
        """Batches of (resource_type, stored JSON bytes) of the current resources of `types`
        (only those with a patient when `patient_compartment`; last updated at or after
        `since`; of `clinic_id`; of `patient_id` or of no patient), all from one snapshot. The first batch is requested before
        this generator yields, so a caller may take its transaction time just before."""
        query = sa.select(_RES.c.resource_type, _RES.c.json).where(_RES.c.resource_type.in_(list(types)))
        if patient_compartment:
            query = query.where(_RES.c.patient_id.is_not(None))
        if since is not None:
            query = query.where(_RES.c.last_updated >= since)
        if clinic_id is not None:
            query = query.where(_RES.c.clinic_id == clinic_id)
        if patient_id is not None:
            query = query.where(sa.or_(_RES.c.patient_id.is_(None), _RES.c.patient_id == patient_id))
        with self._engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                connection = connection.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with connection.begin():
                result = connection.execution_options(stream_results=True, yield_per=batch_size).execute(query)
                for partition in result.partitions(batch_size):
                    yield partition  # type: ignore[misc]
