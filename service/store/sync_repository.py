"""The sync worker's persistence: targets, taking the outbox into per-target delivery rows,
claiming work with leases, recording outcomes, status, metrics, replay and the SQLite
single-worker lock. Plain dataclasses in and out; all SQL of service/sync lives here.

Concurrency (PostgreSQL, any number of workers):
- `ingest` locks the target's cursor row (`FOR UPDATE`), so one worker at a time moves a
  target's cursor; the upsert into `sync_delivery` is idempotent, so a crash in between is
  harmless. Outbox gaps (a seq allocated by a transaction that commits later, or never) are
  remembered and re-read until they appear or time out.
- `claim` picks partitions (a patient, or a clinic's shared resources) with
  `SELECT ... FOR UPDATE SKIP LOCKED` on `sync_partition`, leases them, and marks their due
  items `sending` with the same lease. A partition is sent by one worker at a time, which
  keeps per-patient order and means two workers never send the same item at once. A worker
  that dies leaves leases that expire; then the items are claimable again.
- Every outcome update is conditional on still holding the lease (`lease_owner = me`), and a
  newer version that arrived meanwhile turns the row back to `pending`.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
import weakref
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Sequence

import orjson
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from .repository import FhirResourceRepository
from .outbox import Outbox
from .sync_bulk import keys_json, mark_sending, record_sent, resources_by_key, stamp, upsert_deliveries
from .sync_tables import (
    SyncCounterRow,
    SyncCursorRow,
    SyncDeliveryRow,
    SyncIdMapRow,
    SyncPartitionRow,
    SyncTargetRow,
    SyncWorkerLockRow,
)
from .tables import FhirResourceHistoryRow, FhirResourceRow, OutboxRow

Clock = Callable[[], dt.datetime]
Key = tuple[str, str]  # (resource_type, resource_id)

D = SyncDeliveryRow.__table__  # type: ignore[attr-defined]
P = SyncPartitionRow.__table__  # type: ignore[attr-defined]
C = SyncCounterRow.__table__  # type: ignore[attr-defined]
M = SyncIdMapRow.__table__  # type: ignore[attr-defined]
CUR = SyncCursorRow.__table__  # type: ignore[attr-defined]

STATUSES = ("pending", "sending", "sent", "retrying", "dead")
ACTIVE = ("pending", "sending", "retrying")


_WRITE_LOCKS: "weakref.WeakKeyDictionary[Engine, threading.RLock]" = weakref.WeakKeyDictionary()
_WRITE_LOCKS_GUARD = threading.Lock()
_NO_LOCK = nullcontext()


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


# --------------------------------------------------------------------------- dataclasses


@dataclass(frozen=True)
class TargetRecord:
    name: str
    base_url: str
    auth: str = "none"
    id_policy: str = "client"
    resource_types: tuple[str, ...] = ()
    enabled: bool = True
    username: str | None = None
    client_id: str | None = None
    token_url: str | None = None
    key_id: str | None = None
    alg: str | None = None
    scope: str | None = None
    private_key_file: str | None = None
    secret: str | None = None
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@dataclass(frozen=True)
class DeliveryView:
    target: str
    resource_type: str
    resource_id: str
    version_id: int
    deleted: bool
    status: str
    attempts: int
    next_attempt_at: dt.datetime | None
    last_error: str | None
    blocked_by: str | None
    target_id: str | None
    target_version: str | None
    sent_version_id: int | None
    sent_at: dt.datetime | None
    patient_id: str | None
    clinic_id: str | None
    updated_at: dt.datetime

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "target": self.target, "resource": f"{self.resource_type}/{self.resource_id}",
            "version_id": self.version_id, "status": self.status, "attempts": self.attempts,
            "updated_at": self.updated_at.isoformat(),
        }
        if self.deleted:
            doc["deleted"] = True
        if self.status == "sent" or self.target_id:
            doc["target_id"] = self.target_id
            doc["target_version"] = self.target_version
            doc["sent_version_id"] = self.sent_version_id
            doc["sent_at"] = self.sent_at.isoformat() if self.sent_at else None
        if self.status in ("retrying", "pending") and self.next_attempt_at:
            doc["next_attempt_at"] = self.next_attempt_at.isoformat()
        if self.last_error:
            doc["last_error"] = self.last_error
        if self.blocked_by:
            doc["blocked_by"] = self.blocked_by
        return doc


@dataclass
class ClaimedItem:
    """A delivery row claimed by a worker, with what to send: the resource's current JSON
    (coalescing: only the newest version is ever sent) or a deletion."""

    resource_type: str
    resource_id: str
    partition_key: str
    seq: int
    attempts: int
    version_id: int
    """The version being sent (the store's current one, or the deletion tombstone)."""
    deleted: bool
    json: bytes | None
    patient_id: str | None

    @property
    def key(self) -> Key:
        return (self.resource_type, self.resource_id)


@dataclass(frozen=True)
class Claim:
    items: list[ClaimedItem]
    partitions: list[str]


@dataclass(frozen=True)
class Outcome:
    """What happened to one claimed item.

    kind: sent | retry | dead | defer (not attempted: waiting on a dependency or lost its turn)
    """

    key: Key
    kind: str
    version_id: int
    attempts: int = 0
    next_attempt_at: dt.datetime | None = None
    error: str | None = None
    blocked_by: str | None = None
    target_id: str | None = None
    target_version: str | None = None


@dataclass(frozen=True)
class IngestResult:
    rows: int
    last_seq: int
    open_gaps: int
    caught_up: bool


@dataclass
class DependencyState:
    status: str
    sent_version_id: int | None
    last_error: str | None
    next_attempt_at: dt.datetime | None = None


@dataclass(frozen=True)
class StatusQuery:
    target: str | None = None
    resource_type: str | None = None
    resource_id: str | None = None
    status: str | None = None
    clinic_id: str | None = None
    patient_id: str | None = None
    record_kind: str | None = None
    record_key: str | None = None
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True)
class PulledResource:
    """A resource read from an EHR, already given our id and with references rewritten."""

    resource: dict
    target_id: str


@dataclass
class PullSaveResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    ids: list[str] = field(default_factory=list)


def partition_of(patient_id: str | None, clinic_id: str | None) -> str:
    """A patient's resources go together; resources of no patient go with their clinic."""
    if patient_id:
        return f"patient:{patient_id}"
    return f"clinic:{clinic_id or ''}"


def _is_retryable_db_error(error: OperationalError) -> bool:
    code = getattr(getattr(error, "orig", None), "sqlstate", None)
    return code in {"40001", "40P01", "55P03"} or "database is locked" in str(error)


# --------------------------------------------------------------------------- the repository


class SyncStore:
    """Every database operation of the sync worker, each in its own short transaction."""

    def __init__(self, engine: Engine, clock: Clock = utc_now) -> None:
        self.engine = engine
        self.clock = clock
        self.dialect = engine.dialect.name

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextmanager
    def _tx(self, write: bool = True) -> Iterator[Session]:
        with self.write_lock() if write else _NO_LOCK, Session(self.engine, expire_on_commit=False) as session:
            if self.is_sqlite and write:
                session.connection(execution_options={"sqlite_begin": "immediate"})
            yield session
            session.commit()

    @contextmanager
    def _conn(self, write: bool = True) -> Iterator[sa.Connection]:
        """A Core connection in a transaction, for the worker's hot paths (an ORM Session costs
        its state machine on every statement); write transactions take the write lock."""
        with self.write_lock() if write else _NO_LOCK, self.engine.connect() as connection:
            if self.is_sqlite and write:
                connection.execution_options(sqlite_begin="immediate")
            with connection.begin():
                yield connection

    def write_lock(self) -> Any:
        """SQLite: the lock this process's write transactions on the database take first. The
        worker's lanes would otherwise meet in SQLite's busy handler, which sleeps in steps of
        up to 100 ms; a lock hands over at once. (Other processes still meet in the busy
        handler.) PostgreSQL: no lock."""
        if not self.is_sqlite:
            return _NO_LOCK
        with _WRITE_LOCKS_GUARD:
            lock = _WRITE_LOCKS.get(self.engine)
            if lock is None:
                lock = _WRITE_LOCKS[self.engine] = threading.RLock()
        return lock

    def _retrying(self, work: Callable[[], Any], attempts: int = 8) -> Any:
        for attempt in range(attempts):
            try:
                return work()
            except OperationalError as error:
                if attempt == attempts - 1 or not _is_retryable_db_error(error):
                    raise
                time.sleep(0.01 * (2**attempt))
        raise AssertionError("unreachable")

    def _insert(self, table: sa.Table) -> Any:
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table)

    # ------------------------------------------------------------------ targets

    def list_targets(self) -> list[TargetRecord]:
        with self._tx(write=False) as s:
            rows = s.execute(sa.select(SyncTargetRow).order_by(SyncTargetRow.name)).scalars().all()  # type: ignore[arg-type]
            return [_target(r) for r in rows]

    def get_target(self, name: str) -> TargetRecord | None:
        with self._tx(write=False) as s:
            row = s.get(SyncTargetRow, name)
            return _target(row) if row else None

    def save_target(self, target: TargetRecord, *, keep_secret: bool = True) -> TargetRecord:
        """Create or replace a target. With keep_secret, a None secret keeps the stored one."""
        now = self.clock()
        with self._tx() as s:
            row = s.get(SyncTargetRow, target.name)
            values = dict(
                base_url=target.base_url, auth=target.auth, id_policy=target.id_policy,
                resource_types=",".join(target.resource_types), enabled=target.enabled, username=target.username,
                client_id=target.client_id, token_url=target.token_url, key_id=target.key_id, alg=target.alg,
                scope=target.scope, private_key_file=target.private_key_file,
            )
            if row is None:
                row = SyncTargetRow(name=target.name, secret=target.secret, created_at=now, updated_at=now, **values)
                s.add(row)
            else:
                for k, v in values.items():
                    setattr(row, k, v)
                if target.secret is not None or not keep_secret:
                    row.secret = target.secret
                row.updated_at = now
            s.flush()
            return _target(row)

    def delete_target(self, name: str) -> bool:
        with self._tx() as s:
            row = s.get(SyncTargetRow, name)
            if row is None:
                return False
            s.delete(row)
            return True

    def ensure_cursor(self, target: str) -> None:
        def work() -> None:
            with self._tx() as s:
                stmt = self._insert(SyncCursorRow.__table__).values(  # type: ignore[attr-defined]
                    target=target, last_seq=0, gaps="[]", updated_at=self.clock()
                )
                s.execute(stmt.on_conflict_do_nothing(index_elements=["target"]))

        self._retrying(work)

    # ------------------------------------------------------------------ ingest

    def ingest(
        self, target: str, resource_types: frozenset[str] | None = None, *, batch: int = 500, gap_timeout: float = 60.0
    ) -> IngestResult:
        """Take outbox rows above the target's cursor (and any gaps now filled) into
        `sync_delivery`: one row per resource, newest version wins."""
        return self._retrying(lambda: self._ingest(target, resource_types, batch, gap_timeout))

    def _ingest(self, target: str, types: frozenset[str] | None, batch: int, gap_timeout: float) -> IngestResult:
        O = OutboxRow.__table__  # type: ignore[attr-defined]
        with self._conn(write=False) as s:  # a cheap look first: polling an idle outbox takes no write lock
            cur = s.execute(
                sa.select(SyncCursorRow.last_seq, SyncCursorRow.gaps).where(SyncCursorRow.target == target)  # type: ignore[arg-type]
            ).first()
            if cur is not None and cur.gaps in ("[]", "") and s.execute(
                sa.select(O.c.seq).where(O.c.seq > cur.last_seq).limit(1)
            ).first() is None:
                return IngestResult(0, int(cur.last_seq), 0, True)
        for _ in range(5):
            result = self._ingest_once(target, types, batch, gap_timeout)
            if result is not None:
                return result
        # the cursor moved under every attempt: another worker is taking these rows in right now.
        # Its delivery rows are claimable here too, so step back (not caught up: look again
        # soon) rather than fail the lane - contention between workers is not an error.
        return IngestResult(0, int(cur.last_seq) if cur is not None else 0, 0, False)

    def _ingest_once(self, target: str, types: frozenset[str] | None, batch: int, gap_timeout: float) -> IngestResult | None:
        """Read and work out the batch in a read transaction (outbox rows, gaps, the partition of
        each resource - the JSON reading), then write it in a short write transaction that
        first checks the cursor is where it was read: the write lock (SQLite: the whole
        database) is held for the upsert only. None when the cursor moved meanwhile (retry)."""
        O = OutboxRow.__table__  # type: ignore[attr-defined]
        now = self.clock()
        epoch = now.timestamp()
        with self._conn(write=False) as s:
            seen = s.execute(
                sa.select(SyncCursorRow.last_seq, SyncCursorRow.gaps).where(SyncCursorRow.target == target)  # type: ignore[arg-type]
            ).first()
            last_seq, gaps_text = (int(seen[0]), seen[1]) if seen is not None else (0, "[]")
            gaps: dict[int, float] = {int(k): float(v) for k, v in orjson.loads(gaps_text)}
            cols = [O.c.seq, O.c.resource_type, O.c.resource_id, O.c.version_id, O.c.deleted, O.c.patient_id, O.c.clinic_id]
            rows = list(s.execute(sa.select(*cols).where(O.c.seq > last_seq).order_by(O.c.seq).limit(batch)))
            found = []
            if gaps:
                gap_list = sorted(gaps)
                for i in range(0, len(gap_list), 500):
                    found += list(s.execute(sa.select(*cols).where(O.c.seq.in_(gap_list[i : i + 500]))))
            for row in found:
                gaps.pop(int(row.seq), None)
            expected = last_seq + 1
            for row in rows:
                if row.seq > expected and len(gaps) < 20000:
                    for missing in range(expected, min(row.seq, expected + 20000)):
                        gaps[missing] = epoch
                expected = row.seq + 1
            new_last = rows[-1].seq if rows else last_seq
            gaps = {k: v for k, v in gaps.items() if epoch - v < gap_timeout}
            newest: dict[Key, Any] = {}
            for row in rows + found:
                if types and row.resource_type not in types:
                    continue
                key = (row.resource_type, row.resource_id)
                if key not in newest or newest[key].version_id < row.version_id:
                    newest[key] = row
            rows_in = []
            if newest:
                owners = self._owning_patients(s, list(newest.values()))
                rows_in = [_with_patient(r, owners.get((r.resource_type, r.resource_id))) for r in newest.values()]
        state = {"last_seq": new_last, "gaps": orjson.dumps(sorted([k, v] for k, v in gaps.items())).decode(),
                 "updated_at": now}
        with self._conn() as c:
            cursor = c.execute(sa.select(CUR.c.last_seq, CUR.c.gaps).where(CUR.c.target == target).with_for_update()).first()
            if cursor is None:
                if seen is not None:
                    return None
                c.execute(sa.insert(CUR).values(target=target, **state))
            elif seen is None or (int(cursor.last_seq), cursor.gaps) != (last_seq, gaps_text):
                return None  # another ingester moved the cursor since the read: work it out again
            else:
                c.execute(sa.update(CUR).where(CUR.c.target == target).values(**state))
            if rows_in:
                self._upsert_deliveries(c, target, rows_in, now)
            return IngestResult(len(rows) + len(found), new_last, len(gaps), len(rows) < batch)

    def _owning_patients(self, s: sa.Connection, rows: list[Any]) -> dict[Key, str]:
        """For resources of no patient, the one patient they belong with, if there is one: the
        patient of everything they refer to (a Provenance of an Observation), or else of
        everything in this ingest batch that refers to them (a Medication given in one
        patient's session). They then travel in that patient's partition, in order with it,
        instead of making the clinic's shared partition and the patient wait on each other."""
        loose = {(r.resource_type, r.resource_id) for r in rows if not r.patient_id and not r.deleted}
        if not loose:
            return {}
        keys = [(r.resource_type, r.resource_id) for r in rows if not r.deleted]
        refs: dict[Key, set[Key]] = {}
        dialect = self.dialect
        for r in s.execute(resources_by_key(dialect, "json"), {"rows": keys_json(keys)}):
            refs[(r[0], r[1])] = {(m.group(1).decode(), m.group(2).decode()) for m in _REFERENCE.finditer(bytes(r[2]))}
        wanted = sorted(set().union(*(refs.get(k, set()) for k in loose)))
        patients: dict[Key, str | None] = {(r.resource_type, r.resource_id): r.patient_id for r in rows}
        missing = [k for k in wanted if k not in patients]
        if missing:
            for r in s.execute(resources_by_key(dialect, "patient_id"), {"rows": keys_json(missing)}):
                patients[(r[0], r[1])] = r[2]
        for key in list(patients):
            if key[0] == "Patient":
                patients[key] = key[1]
        owners: dict[Key, str] = {}
        for key in loose:
            owning = {patients.get(ref) for ref in refs.get(key, ())} - {None}
            if len(owning) == 1:
                owners[key] = owning.pop()  # type: ignore[assignment]
        users: dict[Key, set[str]] = {}
        for key, found in refs.items():
            patient = patients.get(key) or owners.get(key)
            for ref in found & loose:
                if ref not in owners:
                    users.setdefault(ref, set()).add(patient or "")
        for key, owning in users.items():
            if len(owning) == 1 and "" not in owning:
                owners[key] = owning.pop()
        return owners

    def _upsert_deliveries(self, c: sa.Connection, target: str, rows: list[Any], now: dt.datetime) -> None:
        values = []
        partitions = set()
        for r in sorted(rows, key=lambda r: (r.resource_type, r.resource_id)):
            part = partition_of(r.partition_patient, r.clinic_id)
            partitions.add(part)
            values.append((r.resource_type, r.resource_id, r.version_id, bool(r.deleted), r.seq, part, r.patient_id,
                           r.clinic_id))
        upsert_deliveries(c, target, values, now)  # one set-based statement (sync_bulk.py)
        c.execute(
            self._insert(P).on_conflict_do_nothing(index_elements=["target", "partition_key"]),
            [dict(target=target, partition_key=p) for p in sorted(partitions)],
        )
        # items that waited on a dead dependency which is alive again
        c.execute(
            sa.update(D)
            .where(
                D.c.target == target, D.c.status == "dead", D.c.blocked_by.is_not(None),
                D.c.blocked_by.in_(_alive_refs(target)),
            )
            .values(status="pending", attempts=0, last_error=None, blocked_by=None, next_attempt_at=now, updated_at=now)
        )

    # ------------------------------------------------------------------ claim and complete

    def _due(self, now: dt.datetime) -> Any:
        return sa.or_(
            sa.and_(D.c.status.in_(["pending", "retrying"]), D.c.next_attempt_at <= now),
            sa.and_(D.c.status == "sending", D.c.lease_until < now),
        )

    def claim(
        self, target: str, worker_id: str, *, max_items: int = 500, max_partitions: int = 100, lease_seconds: float = 60.0
    ) -> Claim:
        return self._retrying(lambda: self._claim(target, worker_id, max_items, max_partitions, lease_seconds))

    def _claim(self, target: str, worker_id: str, max_items: int, max_partitions: int, lease_seconds: float) -> Claim:
        now = self.clock()
        until = now + dt.timedelta(seconds=lease_seconds)
        with self._conn(write=False) as s:  # a cheap look first: idle lanes never take the write lock
            if s.execute(sa.select(D.c.seq).where(D.c.target == target, self._due(now)).limit(1)).first() is None:
                return Claim([], [])
        with self._conn() as s:
            first = sa.func.min(D.c.seq)
            candidates = [
                r[0]
                for r in s.execute(
                    sa.select(D.c.partition_key, first)
                    .where(D.c.target == target, self._due(now))
                    .group_by(D.c.partition_key)
                    # a clinic's shared resources (organization, practitioners, medications) first:
                    # patients' resources refer to them, so whoever is free takes them along
                    .order_by(sa.case((D.c.partition_key.like("clinic:%"), 0), else_=1), first)
                    .limit(max_partitions * 3)
                )
            ]
            if not candidates:
                return Claim([], [])
            free = {
                r[0]
                for r in s.execute(
                    sa.select(P.c.partition_key)
                    .where(
                        P.c.target == target, P.c.partition_key.in_(candidates),
                        sa.or_(P.c.lease_until.is_(None), P.c.lease_until < now),
                    )
                    .with_for_update(skip_locked=True)
                )
            }
            locked = [p for p in candidates if p in free]
            shared = [p for p in locked if p.startswith("clinic:")]
            locked = shared + [p for p in locked if not p.startswith("clinic:")][:max_partitions]
            if not locked:
                return Claim([], [])
            s.execute(
                sa.update(P)
                .where(P.c.target == target, P.c.partition_key.in_(locked))
                .values(lease_owner=worker_id, lease_until=until)
            )
            rows = list(
                s.execute(
                    sa.select(D.c.resource_type, D.c.resource_id, D.c.partition_key, D.c.seq, D.c.attempts, D.c.version_id,
                              D.c.deleted, D.c.patient_id)
                    .where(D.c.target == target, D.c.partition_key.in_(locked), self._due(now))
                    .order_by(D.c.seq)
                    .limit(max_items)
                )
            )
            if not rows:
                s.execute(
                    sa.update(P).where(P.c.target == target, P.c.partition_key.in_(locked)).values(lease_owner=None, lease_until=None)
                )
                return Claim([], [])
            keys = [(r.resource_type, r.resource_id) for r in rows]
            s.execute(mark_sending(self.dialect), {"rows": keys_json(keys), "worker": worker_id, "target": target,
                                                   "until": stamp(self.engine, until), "now": stamp(self.engine, now)})
            used = sorted({r.partition_key for r in rows})
            unused = [p for p in locked if p not in set(used)]
            if unused:
                s.execute(
                    sa.update(P).where(P.c.target == target, P.c.partition_key.in_(unused)).values(lease_owner=None, lease_until=None)
                )
        # the bodies are read after the write transaction (the write lock - SQLite: the whole
        # database - is not held while ~MBs of JSON are read): the rows are leased to us now,
        # and a version written meanwhile is simply the one sent (outcomes record the version)
        with self._conn(write=False) as s:
            current = self._current_json(s, keys, claimed=(target, worker_id, until, locked))
            items = []
            for r in rows:
                key = (r.resource_type, r.resource_id)
                if key in current:
                    version, body = current[key]
                    items.append(ClaimedItem(r.resource_type, r.resource_id, r.partition_key, r.seq, r.attempts, version,
                                             False, body, r.patient_id))
                else:
                    items.append(ClaimedItem(r.resource_type, r.resource_id, r.partition_key, r.seq, r.attempts,
                                             max(r.version_id, current.get(("~tomb",) + key, (0,))[0]),  # type: ignore[arg-type]
                                             True, None, r.patient_id))
            return Claim(items, used)

    def _current_json(
        self, s: Session | sa.Connection, keys: list[Key], claimed: tuple[str, str, dt.datetime, list[str]] | None = None
    ) -> dict[Any, tuple[int, bytes]]:
        """The current (version, JSON) of `keys`; for deleted ones ("~tomb", type, id) -> (last
        version, b""). `claimed` (target, worker, lease end, partitions): `keys` are exactly the
        rows just claimed with that lease, read with a join instead of a long list of keys."""
        R = FhirResourceRow.__table__  # type: ignore[attr-defined]
        H = FhirResourceHistoryRow.__table__  # type: ignore[attr-defined]
        found: dict[Any, tuple[int, bytes]] = {}
        if claimed is not None:
            target, worker_id, until, partitions = claimed
            stmt = (
                sa.select(R.c.resource_type, R.c.id, R.c.version_id, R.c.json)
                .join(D, sa.and_(D.c.resource_type == R.c.resource_type, D.c.resource_id == R.c.id))
                .where(D.c.target == target, D.c.partition_key.in_(partitions), D.c.status == "sending",
                       D.c.lease_owner == worker_id, D.c.lease_until == until)
            )
            wanted = set(keys)
            for r in s.execute(stmt):
                if (r.resource_type, r.id) in wanted:
                    found[(r.resource_type, r.id)] = (r.version_id, r.json)
        for chunk in _chunks([k for k in keys if k not in found], 400):  # (a deletion has no current row)
            for r in s.execute(
                sa.select(R.c.resource_type, R.c.id, R.c.version_id, R.c.json).where(
                    sa.tuple_(R.c.resource_type, R.c.id).in_(chunk)
                )
            ):
                found[(r.resource_type, r.id)] = (r.version_id, r.json)
        missing = [k for k in keys if k not in found]
        for chunk in _chunks(missing, 400):
            for r in s.execute(
                sa.select(H.c.resource_type, H.c.id, sa.func.max(H.c.version_id))
                .where(sa.tuple_(H.c.resource_type, H.c.id).in_(chunk))
                .group_by(H.c.resource_type, H.c.id)
            ):
                found[("~tomb", r[0], r[1])] = (r[2], b"")
        return found

    def renew(self, target: str, worker_id: str, partitions: Sequence[str], lease_seconds: float) -> bool:
        """Extend this worker's lease on its partitions; False if any was lost."""

        def work() -> bool:
            now = self.clock()
            until = now + dt.timedelta(seconds=lease_seconds)
            with self._conn() as s:
                result = s.execute(
                    sa.update(P)
                    .where(P.c.target == target, P.c.partition_key.in_(list(partitions)), P.c.lease_owner == worker_id)
                    .values(lease_until=until)
                )
                s.execute(
                    sa.update(D)
                    .where(D.c.target == target, D.c.partition_key.in_(list(partitions)), D.c.lease_owner == worker_id,
                           D.c.status == "sending")
                    .values(lease_until=until)
                )
                return result.rowcount == len(set(partitions))

        return self._retrying(work)

    def dependency_states(self, target: str, keys: Iterable[Key]) -> dict[Key, DependencyState]:
        keys = sorted(set(keys))
        out: dict[Key, DependencyState] = {}
        with self._conn(write=False) as s:
            for chunk in _chunks(keys, 400):
                for r in s.execute(
                    sa.select(D.c.resource_type, D.c.resource_id, D.c.status, D.c.sent_version_id, D.c.last_error,
                              D.c.next_attempt_at).where(
                        D.c.target == target, sa.tuple_(D.c.resource_type, D.c.resource_id).in_(chunk)
                    )
                ):
                    out[(r.resource_type, r.resource_id)] = DependencyState(
                        r.status, r.sent_version_id, r.last_error, r.next_attempt_at
                    )
        return out

    def id_map(self, target: str, keys: Iterable[Key]) -> dict[Key, str]:
        keys = sorted(set(keys))
        out: dict[Key, str] = {}
        with self._tx(write=False) as s:
            for chunk in _chunks(keys, 400):
                for r in s.execute(
                    sa.select(M.c.resource_type, M.c.resource_id, M.c.target_id).where(
                        M.c.target == target, sa.tuple_(M.c.resource_type, M.c.resource_id).in_(chunk)
                    )
                ):
                    out[(r.resource_type, r.resource_id)] = r.target_id
        return out

    def complete(
        self, target: str, worker_id: str, outcomes: Sequence[Outcome], partitions: Sequence[str],
        id_map: dict[Key, str] | None = None,
    ) -> None:
        """Record outcomes (only for rows this worker still leases) and release the partitions."""
        self._retrying(lambda: self._complete(target, worker_id, outcomes, partitions, id_map or {}))

    def _complete(
        self, target: str, worker_id: str, outcomes: Sequence[Outcome], partitions: Sequence[str], id_map: dict[Key, str]
    ) -> None:
        now = self.clock()
        b = sa.bindparam
        where = sa.and_(
            D.c.target == target, D.c.resource_type == b("b_rt"), D.c.resource_id == b("b_rid"),
            D.c.lease_owner == worker_id,
        )
        newer = D.c.version_id > b("b_v")
        counters: dict[str, int] = {}
        by_kind: dict[str, list[dict]] = {}
        for o in sorted(outcomes, key=lambda o: o.key):
            p = dict(b_rt=o.key[0], b_rid=o.key[1], b_v=o.version_id)
            if o.kind == "sent":
                p.update(b_tid=o.target_id, b_tver=o.target_version)
            elif o.kind in ("retry", "dead"):
                p.update(b_att=o.attempts, b_next=o.next_attempt_at or now, b_err=(o.error or "")[:4000], b_blk=o.blocked_by)
            else:
                p.update(b_next=o.next_attempt_at or now, b_err=(o.error or "")[:4000] if o.error else None)
            by_kind.setdefault(o.kind, []).append(p)
            name = {"sent": "sent", "retry": "retried", "dead": "dead", "defer": "deferred"}[o.kind]
            counters[name] = counters.get(name, 0) + 1
        with self._conn() as s:
            conn = s
            if "sent" in by_kind:  # the common case: one set-based statement (sync_bulk.py)
                record_sent(conn, target, worker_id,
                            [(p["b_rt"], p["b_rid"], p["b_v"], p["b_tid"], p["b_tver"]) for p in by_kind["sent"]], now)
            for kind, status in (("retry", "retrying"), ("dead", "dead")):
                if kind in by_kind:
                    conn.execute(
                        sa.update(D).where(where).values(
                            status=sa.case((newer, "pending"), else_=status),
                            attempts=sa.case((newer, 0), else_=b("b_att")),
                            next_attempt_at=sa.case((newer, now), else_=b("b_next")),
                            last_error=b("b_err"), blocked_by=b("b_blk"), lease_owner=None, lease_until=None,
                            updated_at=now,
                        ),
                        by_kind[kind],
                    )
            if "defer" in by_kind:
                conn.execute(
                    sa.update(D).where(where).values(
                        status="pending", next_attempt_at=b("b_next"), last_error=b("b_err"), lease_owner=None,
                        lease_until=None, updated_at=now,
                    ),
                    by_kind["defer"],
                )
            if id_map:
                rows = [
                    dict(target=target, resource_type=k[0], resource_id=k[1], target_id=v, updated_at=now)
                    for k, v in sorted(id_map.items())
                ]
                for chunk in _chunks(rows, 400):
                    stmt = self._insert(M).values(chunk)
                    s.execute(
                        stmt.on_conflict_do_update(
                            index_elements=["target", "resource_type", "resource_id"],
                            set_=dict(target_id=stmt.excluded.target_id, updated_at=stmt.excluded.updated_at),
                        )
                    )
            if partitions:
                s.execute(
                    sa.update(P)
                    .where(P.c.target == target, P.c.partition_key.in_(list(partitions)), P.c.lease_owner == worker_id)
                    .values(lease_owner=None, lease_until=None)
                )
            self._count(s, target, counters)

    def _count(self, s: Session | sa.Connection, target: str, counters: dict[str, int]) -> None:
        for name, value in sorted(counters.items()):
            if not value:
                continue
            stmt = self._insert(C).values(target=target, name=name, value=value)
            s.execute(stmt.on_conflict_do_update(index_elements=["target", "name"], set_=dict(value=C.c.value + stmt.excluded.value)))

    def release_all_leases(self, target: str | None = None) -> int:
        """Make every `sending` item claimable again (SQLite: the one worker starting up)."""

        def work() -> int:
            now = self.clock()
            with self._tx() as s:
                pw = [P.c.lease_owner.is_not(None)] + ([P.c.target == target] if target else [])
                s.execute(sa.update(P).where(*pw).values(lease_owner=None, lease_until=None))
                dw = [D.c.status == "sending"] + ([D.c.target == target] if target else [])
                return s.execute(
                    sa.update(D).where(*dw).values(status="pending", lease_owner=None, lease_until=None, next_attempt_at=now)
                ).rowcount

        return self._retrying(work)

    # ------------------------------------------------------------------ visibility

    def status(self, q: StatusQuery) -> list[DeliveryView]:
        R = FhirResourceRow.__table__  # type: ignore[attr-defined]
        stmt = sa.select(D)
        conds = []
        if q.target:
            conds.append(D.c.target == q.target)
        if q.resource_type:
            conds.append(D.c.resource_type == q.resource_type)
        if q.resource_id:
            conds.append(D.c.resource_id == q.resource_id)
        if q.status:
            conds.append(D.c.status == q.status)
        if q.clinic_id:
            conds.append(D.c.clinic_id == q.clinic_id)
        if q.patient_id:
            conds.append(D.c.patient_id == q.patient_id)
        if q.record_kind or q.record_key:
            stmt = stmt.join(R, sa.and_(R.c.resource_type == D.c.resource_type, R.c.id == D.c.resource_id))
            if q.record_kind:
                conds.append(R.c.source_kind == q.record_kind)
            if q.record_key:
                conds.append(R.c.source_key == q.record_key)
        stmt = stmt.where(*conds).order_by(D.c.target, D.c.seq, D.c.resource_type, D.c.resource_id)
        stmt = stmt.limit(q.limit).offset(q.offset)
        with self._tx(write=False) as s:
            return [
                DeliveryView(
                    r.target, r.resource_type, r.resource_id, r.version_id, r.deleted, r.status, r.attempts,
                    r.next_attempt_at, r.last_error, r.blocked_by, r.target_id, r.target_version, r.sent_version_id,
                    r.sent_at, r.patient_id, r.clinic_id, r.updated_at,
                )
                for r in s.execute(stmt)
            ]

    def has_active(self, target: str) -> bool:
        """Is any of the target's items pending, sending or retrying? (An index probe: the
        worker asks this often while it waits to be idle.)"""
        with self._conn(write=False) as s:
            return s.execute(
                sa.select(D.c.seq).where(D.c.target == target, D.c.status.in_(ACTIVE)).limit(1)
            ).first() is not None

    def status_counts(self, target: str | None = None) -> dict[str, dict[str, int]]:
        stmt = sa.select(D.c.target, D.c.status, sa.func.count()).group_by(D.c.target, D.c.status)
        if target:
            stmt = stmt.where(D.c.target == target)
        out: dict[str, dict[str, int]] = {}
        with self._tx(write=False) as s:
            for t, status, n in s.execute(stmt):
                out.setdefault(t, {k: 0 for k in STATUSES})[status] = n
        return out

    def counters(self, target: str | None = None) -> dict[str, dict[str, int]]:
        stmt = sa.select(C.c.target, C.c.name, C.c.value)
        if target:
            stmt = stmt.where(C.c.target == target)
        out: dict[str, dict[str, int]] = {}
        with self._tx(write=False) as s:
            for t, name, value in s.execute(stmt):
                out.setdefault(t, {})[name] = int(value)
        return out

    def cursor(self, target: str) -> tuple[int, int]:
        """(cursor seq, newest outbox seq)."""
        O = OutboxRow.__table__  # type: ignore[attr-defined]
        with self._tx(write=False) as s:
            last = s.execute(sa.select(SyncCursorRow.last_seq).where(SyncCursorRow.target == target)).scalar()  # type: ignore[arg-type]
            newest = s.execute(sa.select(sa.func.max(O.c.seq))).scalar()
            return int(last or 0), int(newest or 0)

    def next_due(self, target: str) -> dt.datetime | None:
        with self._tx(write=False) as s:
            return s.execute(
                sa.select(sa.func.min(sa.case((D.c.status == "sending", D.c.lease_until), else_=D.c.next_attempt_at))).where(
                    D.c.target == target, D.c.status.in_(ACTIVE)
                )
            ).scalar()

    def replay(self, target: str, resource: Key | None = None) -> int:
        """Dead letters back to pending (all of a target's, or one resource and what waited on it)."""

        def work() -> int:
            now = self.clock()
            with self._tx() as s:
                conds = [D.c.target == target, D.c.status == "dead"]
                if resource is not None:
                    ref = f"{resource[0]}/{resource[1]}"
                    conds.append(
                        sa.or_(sa.and_(D.c.resource_type == resource[0], D.c.resource_id == resource[1]), D.c.blocked_by == ref)
                    )
                n = s.execute(
                    sa.update(D).where(*conds).values(
                        status="pending", attempts=0, last_error=None, blocked_by=None, next_attempt_at=now, updated_at=now
                    )
                ).rowcount
                self._count(s, target, {"replayed": n})
                return n

        return self._retrying(work)

    def backfill(self, target: str) -> None:
        """Start the target's cursor from the beginning of the outbox again (idempotent:
        what was sent stays sent unless the store has a newer version)."""
        now = self.clock()
        with self._tx() as s:
            row = s.get(SyncCursorRow, target)
            if row is None:
                s.add(SyncCursorRow(target=target, last_seq=0, gaps="[]", updated_at=now))
            else:
                row.last_seq = 0
                row.gaps = "[]"
                row.updated_at = now

    # ------------------------------------------------------------------ single-worker lock

    def acquire_lock(
        self, name: str, worker_id: str, host: str, pid: int, *, stale_seconds: float,
        pid_alive: Callable[[int], bool],
    ) -> tuple[bool, str]:
        """Take (or keep) a named lock; a holder whose heartbeat is stale, or whose process on
        this host is gone, loses it. Returns (acquired, description of the holder)."""

        def work() -> tuple[bool, str]:
            now = self.clock()
            with self._tx() as s:
                row = s.get(SyncWorkerLockRow, name)
                if row is None:
                    s.add(SyncWorkerLockRow(name=name, worker_id=worker_id, host=host, pid=pid, heartbeat_at=now))
                    return True, ""
                if row.worker_id == worker_id:
                    row.heartbeat_at = now
                    return True, ""
                stale = (now - row.heartbeat_at).total_seconds() > stale_seconds
                dead = row.host == host and not pid_alive(row.pid)
                if stale or dead:
                    row.worker_id, row.host, row.pid, row.heartbeat_at = worker_id, host, pid, now
                    return True, ""
                return False, f"worker {row.worker_id} (pid {row.pid} on {row.host}, heartbeat {row.heartbeat_at.isoformat()})"

        return self._retrying(work)

    def release_lock(self, name: str, worker_id: str) -> None:
        with self._tx() as s:
            s.execute(
                sa.delete(SyncWorkerLockRow).where(
                    SyncWorkerLockRow.name == name, SyncWorkerLockRow.worker_id == worker_id  # type: ignore[arg-type]
                )
            )

    # ------------------------------------------------------------------ inbound pull

    def save_pulled(
        self, target: str, resources: Sequence[PulledResource], *, clinic_id: str | None, source_key: str,
        mark_delivered: bool = True,
    ) -> PullSaveResult:
        """Store resources pulled from `target` (source kind `ehr-pull`) with their outbox rows,
        in one transaction. They already exist on that target, so its delivery rows are
        recorded as sent with the target's ids (nothing is echoed back)."""
        now = self.clock()
        result = PullSaveResult()
        with self._tx() as s:
            resources_repo = FhirResourceRepository(s, lambda: now)
            outbox = Outbox(s, lambda: now)
            deliveries = []
            for pulled in resources:
                before = resources_repo.read(pulled.resource["resourceType"], pulled.resource["id"])
                write = resources_repo.save(pulled.resource, clinic_id=clinic_id, source=("ehr-pull", clinic_id or "", source_key))
                result.ids.append(f"{write.resource_type}/{write.id}")
                if not write.changed:
                    result.unchanged += 1
                else:
                    result.created += before is None
                    result.updated += before is not None
                    outbox.append(write)
                deliveries.append((write, pulled.target_id))
            s.flush()
            if mark_delivered and deliveries:
                rows = []
                for write, target_id in deliveries:
                    rows.append(
                        dict(
                            target=target, resource_type=write.resource_type, resource_id=write.id,
                            version_id=write.version_id, deleted=False, seq=0,
                            partition_key=partition_of(write.patient_id, write.clinic_id), patient_id=write.patient_id,
                            clinic_id=write.clinic_id, status="sent", attempts=0, next_attempt_at=now,
                            target_id=target_id, sent_version_id=write.version_id, sent_at=now, created_at=now,
                            updated_at=now,
                        )
                    )
                for chunk in _chunks(rows, 300):
                    stmt = self._insert(D).values(chunk)
                    ex = stmt.excluded
                    s.execute(
                        stmt.on_conflict_do_update(
                            index_elements=["target", "resource_type", "resource_id"],
                            set_=dict(
                                version_id=ex.version_id, status="sent", sent_version_id=ex.sent_version_id,
                                target_id=ex.target_id, sent_at=ex.sent_at, last_error=None, attempts=0, updated_at=ex.updated_at,
                            ),
                            where=D.c.version_id <= ex.version_id,
                        )
                    )
                maps = [
                    dict(target=target, resource_type=w.resource_type, resource_id=w.id, target_id=t, updated_at=now)
                    for w, t in deliveries
                ]
                for chunk in _chunks(maps, 300):
                    stmt = self._insert(M).values(chunk)
                    s.execute(
                        stmt.on_conflict_do_update(
                            index_elements=["target", "resource_type", "resource_id"],
                            set_=dict(target_id=stmt.excluded.target_id, updated_at=stmt.excluded.updated_at),
                        )
                    )
        return result


_REFERENCE = re.compile(rb'"reference":"([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})"')


@dataclass(frozen=True)
class _Ingested:
    seq: int
    resource_type: str
    resource_id: str
    version_id: int
    deleted: bool
    patient_id: str | None
    clinic_id: str | None
    partition_patient: str | None


def _with_patient(row: Any, owner: str | None) -> _Ingested:
    return _Ingested(row.seq, row.resource_type, row.resource_id, row.version_id, bool(row.deleted), row.patient_id,
                     row.clinic_id, row.patient_id or owner)


def _alive_refs(target: str) -> Any:
    """'Type/id' of a target's delivery rows that are not dead (as a scalar subquery)."""
    A = D.alias("alive")
    return (
        sa.select(A.c.resource_type + sa.literal("/") + A.c.resource_id)
        .where(A.c.target == target, A.c.status != "dead")
    )


def _chunks(items: Sequence[Any], size: int) -> Iterator[list[Any]]:
    items = list(items)
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _target(row: SyncTargetRow) -> TargetRecord:
    return TargetRecord(
        name=row.name, base_url=row.base_url, auth=row.auth, id_policy=row.id_policy,
        resource_types=tuple(t for t in row.resource_types.split(",") if t), enabled=row.enabled, username=row.username,
        client_id=row.client_id, token_url=row.token_url, key_id=row.key_id, alg=row.alg, scope=row.scope,
        private_key_file=row.private_key_file, secret=row.secret, created_at=row.created_at, updated_at=row.updated_at,
    )
