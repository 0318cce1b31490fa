"""Repositories over the store's tables. They speak plain dataclasses and dicts/bytes; no
table row leaves this package.

Every statement here is SQLAlchemy Core on the unit of work's connection (no ORM objects, no
autoflush): the write path of a record is a few statements however many resources it produces
(docs/decisions/0001-store.md). `FhirResourceRepository.save_many` reads the current rows of
every resource of a batch in one SELECT (plus, in the same query, the newest history version
of each and the rows produced by the batch's source) - or nothing, for a record's first write
(`presume_new`) - and queues history, current rows and search tokens for the unit of work's
write-behind, which sends every INSERT of the transaction as one statement on PostgreSQL
(`insert_rows`; write_behind.py). On PostgreSQL, a record's first write whose references are
in the record cache is that one statement and nothing else (`RecordRepository.read_for_write`).
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import orjson
import sqlalchemy as sa

from .canonical import canonical_json, content_hash
from .fhir_index import date_span, patient_id_of, search_tokens
from .record_cache import RecordCache
from .sessions import StoreSession
from .tables import (
    FhirResourceHistoryRow,
    FhirResourceRow,
    FhirSearchTokenRow,
    IdempotencyKeyRow,
    RecordRow,
    RecordVersionRow,
)

Clock = Callable[[], dt.datetime]
Source = tuple[str, str, str]
RecordKey = tuple[str, str, str]
"""(kind, clinic_id, key) of a domain record."""
RecordVersion = tuple[str, str, str, int]
"""(kind, clinic_id, key, version) of a domain record."""

_REC: sa.Table = RecordRow.__table__  # type: ignore[attr-defined]
_REC_VERSION: sa.Table = RecordVersionRow.__table__  # type: ignore[attr-defined]
_RES: sa.Table = FhirResourceRow.__table__  # type: ignore[attr-defined]
_HIST: sa.Table = FhirResourceHistoryRow.__table__  # type: ignore[attr-defined]
_TOKEN: sa.Table = FhirSearchTokenRow.__table__  # type: ignore[attr-defined]
_IDEM: sa.Table = IdempotencyKeyRow.__table__  # type: ignore[attr-defined]


class _Unset:
    pass


_UNSET: Any = _Unset()


def _connection_of(repository: Any) -> sa.Connection:
    """The session's connection for the current transaction, kept on the repository between
    calls (an ORM Session's connection() walks its transaction state each time). The session
    closes it when the transaction ends, and the next call asks the session again."""
    connection = repository._cached_connection
    if connection is None or connection.closed or connection.invalidated:
        connection = repository._cached_connection = repository._session.connection()
    return connection


def driver_execute(connection: sa.Connection, statement: str, params: Mapping[str, Any], *, fetch: bool = False) -> list[tuple]:
    """Run one PostgreSQL statement (`%(name)s` placeholders) on the DBAPI connection itself.

    For the write path's three statements (records read, resources' state read, the batched
    INSERT) SQLAlchemy's execution path - execution context, result proxy, event dispatch -
    cost about as much client CPU as psycopg's own work (docs/decisions/0011, item 15). What
    that path would do is kept: the unit of work's write-behind hook runs first (pending
    INSERTs go out, lazy BEGIN before a write), a driver error comes back as SQLAlchemy's
    exception (IntegrityError stays a retry for the unit of work), a broken connection is
    invalidated so the pool does not hand it out again, and `before_cursor_execute` listeners
    still see the statement (with no execution context)."""
    from .write_behind import before_statement

    before_statement(connection, statement)
    driver: Any = connection.connection.driver_connection
    try:
        with driver.cursor() as cursor:
            if connection._has_events or connection.engine._has_events:  # statement counters, tracing
                connection.dispatch.before_cursor_execute(connection, cursor, statement, params, None, False)
            cursor.execute(statement, params)
            return cursor.fetchall() if fetch else []
    except driver.Error as error:
        invalidated = bool(driver.broken)
        if invalidated:
            connection.invalidate(error)
        raise sa.exc.DBAPIError.instance(
            statement, params, error, driver.Error, hide_parameters=True, connection_invalidated=invalidated,
        ) from error


# --------------------------------------------------------------------------- bulk insert

_PG_TYPES: tuple[tuple[type, str], ...] = (
    (sa.BigInteger, "int8"), (sa.Integer, "int4"), (sa.Boolean, "bool"), (sa.LargeBinary, "bytea"),
    (sa.DateTime, "timestamptz"), (sa.String, "text"),
)
_PG_INSERTS: dict[tuple, tuple[str, tuple[tuple[str, ...], ...]]] = {}  # by (shape, required)
_PG_INSERT_GUARDS = {
    # A current resource row never repeats or falls behind a version in its history: a history
    # row at or above the inserted version makes the whole statement fail as a unique violation
    # (migration 0011's function, called only for such a row - CASE fixes the order in which
    # PostgreSQL evaluates the conditions, which it otherwise picks by estimated cost). Costs a
    # primary-key probe of the history per inserted resource; what it buys is
    # FhirResourceRepository.save_many's `presume_new` (no state read for a record's first write).
    "fhir_resource": (
        "NOT EXISTS (SELECT FROM fhir_resource_history h WHERE h.resource_type = u.resource_type AND h.id = u.id "
        "AND CASE WHEN h.version_id >= u.version_id THEN fhir_version_conflict(h.resource_type, h.id, h.version_id) END)"
    ),
}


def _pg_type(column: sa.Column) -> str:
    kind = column.type.impl if isinstance(column.type, sa.TypeDecorator) else column.type
    for python_type, name in _PG_TYPES:
        if isinstance(kind, python_type):
            return name
    raise TypeError(f"no PostgreSQL type for {column}")  # pragma: no cover


_PG_REQUIRED = (
    # the records a write relied on without reading them (`insert_rows`' `required`): any whose
    # current version differs fails the statement (migration 0012's function). The current
    # version is a scalar subquery per row - a primary-key probe; the same test as NOT EXISTS
    # inside CASE was planned as a hashed subplan over the whole record table.
    "g AS (SELECT FROM json_to_recordset(CAST(%(g)s AS json)) AS r(kind text, clinic_id text, key text, version int4) "
    "WHERE CASE WHEN (SELECT x.version FROM record x WHERE x.kind = r.kind AND x.clinic_id = r.clinic_id "
    "AND x.key = r.key) IS DISTINCT FROM r.version THEN record_changed(r.kind, r.clinic_id, r.key) END)"
)


def _pg_insert_statement(
    shape: tuple[tuple[sa.Table, tuple[str, ...]], ...], quote: Callable[[str], str], required: bool = False
) -> tuple[str, tuple[tuple[str, ...], ...]]:
    """One `INSERT ... SELECT FROM json_to_recordset(%(p<i>)s)` per table (rows in the order
    given), chained as data-modifying CTEs: a constant text per shape, so psycopg prepares it
    once, and each table's rows travel as one JSON text (bytea columns as UTF-8 text, turned
    back into bytes by convert_to). With `required`, the first INSERT runs only after the
    required records' versions are checked (`_PG_REQUIRED`; without INSERTs, the check alone).
    Also returns the bytea column names of each table."""
    if not shape:
        return f"WITH {_PG_REQUIRED} SELECT count(*) FROM g", ()
    parts = []
    binary_columns = []
    for i, (table, names) in enumerate(shape):
        types = [_pg_type(table.c[name]) for name in names]
        binary_columns.append(tuple(n for n, t in zip(names, types) if t == "bytea"))
        columns = ", ".join(quote(n) for n in names)
        definitions = ", ".join(f"{quote(n)} {'text' if t == 'bytea' else t}" for n, t in zip(names, types))
        values = ", ".join(f"convert_to({quote(n)}, 'UTF8')" if t == "bytea" else quote(n) for n, t in zip(names, types))
        conditions = [_PG_INSERT_GUARDS[table.name]] if table.name in _PG_INSERT_GUARDS else []
        if required and i == 0:
            conditions.append("NOT EXISTS (SELECT FROM g)")
        where = f"WHERE {' AND '.join(conditions)} " if conditions else ""
        parts.append(
            f"INSERT INTO {quote(table.name)} ({columns}) SELECT {values} "
            f"FROM ROWS FROM (json_to_recordset(CAST(%(p{i})s AS json)) AS ({definitions})) WITH ORDINALITY "
            f"AS u({columns}, ord) {where}ORDER BY ord"
        )
    ctes = ([_PG_REQUIRED] if required else []) + [f"w{i} AS ({part})" for i, part in enumerate(parts[:-1])]
    sql = f"WITH {', '.join(ctes)} {parts[-1]}" if ctes else parts[-1]
    return sql, tuple(binary_columns)


def insert_rows(
    connection: sa.Connection, batches: Sequence[tuple[sa.Table, Sequence[dict]]], required: Sequence[RecordVersion] = ()
) -> None:
    """Insert rows into one or more tables (each batch's rows have the same keys: column names;
    datetimes timezone-aware, bytes UTF-8 JSON). `required` (PostgreSQL): records whose current
    version must still be the one given, else nothing is inserted and a serialization failure
    is raised (RecordRepository.read_for_write).

    PostgreSQL: one statement for all of them, each table's rows as one JSON parameter, so a
    batch is one round trip and one executor run however many rows it has (executemany would
    run one INSERT per row, and psycopg's array parameters cost a Python call per value).
    SQLite: one executemany per table (in process, nothing to save)."""
    batches = [(table, rows) for table, rows in batches if rows]
    if not batches and not required:
        return
    if connection.dialect.name != "postgresql":
        if required:
            raise ValueError("required record versions are checked on PostgreSQL only")
        for table, rows in batches:
            connection.execute(sa.insert(table), list(rows))
        return
    shape = tuple((table, tuple(rows[0])) for table, rows in batches)
    cached = _PG_INSERTS.get((shape, bool(required)))
    if cached is None:
        cached = _PG_INSERTS[(shape, bool(required))] = _pg_insert_statement(
            shape, connection.dialect.identifier_preparer.quote, bool(required)
        )
    statement, binary_columns = cached
    params: dict[str, str] = {}
    if required:
        params["g"] = orjson.dumps(
            [{"kind": k, "clinic_id": c, "key": key, "version": v} for k, c, key, v in required]
        ).decode()
    for i, (_, rows) in enumerate(batches):
        if binary_columns[i]:
            rows = [_text_bytes(row, binary_columns[i]) for row in rows]
        params[f"p{i}"] = orjson.dumps(rows).decode()
    driver_execute(connection, statement, params)


def _text_bytes(row: dict, names: tuple[str, ...]) -> dict:
    row = dict(row)
    for name in names:
        if row[name] is not None:
            row[name] = row[name].decode()
    return row


def _insert(repository: Any, connection: sa.Connection, batches: Sequence[tuple[sa.Table, Sequence[dict]]]) -> None:
    """Insert now, or queue in the repository's unit-of-work write-behind when it has one."""
    if repository._pending is not None:
        repository._pending.add(batches)
    else:
        insert_rows(connection, batches)


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class StoredRecord:
    """One version of a domain record as stored (data is the canonical validated JSON)."""

    kind: str
    clinic_id: str
    key: str
    patient_key: str | None
    data: dict
    version: int
    content_hash: str
    created_at: dt.datetime
    updated_at: dt.datetime


_RECORD_COLUMNS = (
    _REC.c.kind, _REC.c.clinic_id, _REC.c.key, _REC.c.patient_key, _REC.c.data, _REC.c.version,
    _REC.c.content_hash, _REC.c.created_at, _REC.c.updated_at,
)
_SELECT_RECORDS = sa.select(*_RECORD_COLUMNS).where(
    sa.tuple_(_REC.c.kind, _REC.c.clinic_id, _REC.c.key).in_(sa.bindparam("keys", expanding=True))
)
# PostgreSQL: one primary-key probe per wanted key, whatever the statistics say. (The row-value
# IN list above becomes an OR of conjunctions, and on a table not yet analysed the planner
# scanned the clinic index instead - every record of the clinic, on every write.) A UNION ALL
# of full-key equalities, one text per number of keys (psycopg prepares each once per
# connection): its generic plan is the custom one, so PostgreSQL plans it once. (The earlier
# form, a lateral join over unnest() of three text arrays, was re-planned on every execution:
# the generic plan cannot know the arrays' length, so PostgreSQL kept custom plans - about
# 0.1 ms of server CPU per write, docs/decisions/0011.)
_RECORD_PROBE_PG = (
    "SELECT kind, clinic_id, key, patient_key, data, version, content_hash, created_at, updated_at FROM record "
    "WHERE kind = %(k{i})s AND clinic_id = %(c{i})s AND key = %(v{i})s"
)


@functools.lru_cache(maxsize=64)
def _select_records_pg(count: int) -> str:
    """SQL for the driver (driver_execute: psycopg placeholders) reading `count` records by key."""
    return " UNION ALL ".join(_RECORD_PROBE_PG.format(i=i) for i in range(count))


_SELECT_RECORD = sa.select(*_RECORD_COLUMNS).where(
    _REC.c.kind == sa.bindparam("kind"), _REC.c.clinic_id == sa.bindparam("clinic_id"), _REC.c.key == sa.bindparam("key")
)
_UPDATE_RECORD = (
    sa.update(_REC)
    .where(_REC.c.kind == sa.bindparam("k_kind"), _REC.c.clinic_id == sa.bindparam("k_clinic_id"), _REC.c.key == sa.bindparam("k_key"))
)


def _record(row: Any) -> StoredRecord:
    return StoredRecord(
        kind=row[0], clinic_id=row[1], key=row[2], patient_key=row[3], data=orjson.loads(row[4]), version=row[5],
        content_hash=row[6], created_at=row[7], updated_at=row[8],
    )


class RecordRepository:
    """Domain records by (kind, clinic, key), with every version kept in `record_version`.
    With `pending` (a unit of work's write-behind, service/store/write_behind.py), its INSERTs
    are queued there instead of sent."""

    def __init__(self, session: StoreSession, clock: Clock, pending: Any = None, cache: RecordCache | None = None) -> None:
        self._session = session
        self._clock = clock
        self._pending = pending
        self._cache = cache
        self._written: list[StoredRecord] = []
        self._cached_connection: sa.Connection | None = None

    def _connection(self) -> sa.Connection:
        return _connection_of(self)

    def get(self, kind: str, clinic_id: str, key: str) -> StoredRecord | None:
        row = self._connection().execute(_SELECT_RECORD, {"kind": kind, "clinic_id": clinic_id, "key": key}).first()
        found = _record(row) if row is not None else None
        if found is not None and self._cache is not None:
            self._cache.put([found])
        return found

    def read_for_write(self, references: Sequence[RecordKey], own: RecordKey) -> tuple[dict[RecordKey, StoredRecord], bool]:
        """The records a write of `own` needs (its references and itself), as `get_many`, and
        whether they were presumed rather than read: on PostgreSQL, with a cache, when the
        cache holds every reference and does not know `own` (service/store/record_cache.py),
        the references come from the cache, `own` is presumed new (absent from the result),
        and the unit of work's INSERT will fail unless the references' versions are still
        current (`insert_rows`' `required`) and `own` is still absent (its primary key)."""
        cache = self._cache
        if cache is not None and self._pending is not None and not cache.knows(own):
            cached = cache.all_of(references)
            if cached is not None and self._connection().dialect.name == "postgresql":
                self._pending.require([(r.kind, r.clinic_id, r.key, r.version) for r in cached.values()])
                return cached, True
        return self.get_many([*references, own]), False

    def committed(self) -> None:
        """The unit of work committed: the versions it wrote join the cache."""
        if self._cache is not None and self._written:
            self._cache.put(self._written)
        self._written = []

    def discard_written(self) -> None:
        self._written = []

    def get_many(self, keys: Iterable[RecordKey]) -> dict[RecordKey, StoredRecord]:
        """The records that exist among `keys` ((kind, clinic_id, key) each), in one query."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        if len(wanted) == 1:
            one = self.get(*wanted[0])
            return {wanted[0]: one} if one is not None else {}
        found = {}
        connection = self._connection()
        if connection.dialect.name == "postgresql":
            params = {}
            for i, (kind, clinic_id, key) in enumerate(wanted):
                params[f"k{i}"], params[f"c{i}"], params[f"v{i}"] = kind, clinic_id, key
            rows = driver_execute(connection, _select_records_pg(len(wanted)), params, fetch=True)
        else:
            rows = connection.execute(_SELECT_RECORDS, {"keys": wanted})
        for row in rows:
            stored = _record(row)
            found[(stored.kind, stored.clinic_id, stored.key)] = stored
        if self._cache is not None:
            self._cache.put(found.values())
        return found

    def exists(self, kind: str, clinic_id: str, key: str) -> bool:
        return self.get(kind, clinic_id, key) is not None

    def save(
        self, kind: str, clinic_id: str, key: str, *, patient_key: str | None, data: dict,
        current: StoredRecord | None = _UNSET,
    ) -> StoredRecord:
        """Insert version 1 or replace the current version with version + 1.

        The caller decides whether the content changed (compare `content_hash` first).
        `current` is the stored version when the caller has just read it (saves a query)."""
        now = self._clock()
        text = canonical_json(data).decode()
        digest = content_hash(text.encode())
        if current is _UNSET:
            current = self.get(kind, clinic_id, key)
        connection = self._connection()
        version_row = {"kind": kind, "clinic_id": clinic_id, "key": key, "version": 1, "data": text,
                       "content_hash": digest, "recorded_at": now}
        if current is None:
            version, created_at = 1, now
            row = {"kind": kind, "clinic_id": clinic_id, "key": key, "patient_key": patient_key, "data": text,
                   "version": 1, "content_hash": digest, "created_at": now, "updated_at": now}
            _insert(self, connection, [(_REC, [row]), (_REC_VERSION, [version_row])])
        else:
            version, created_at = current.version + 1, current.created_at
            connection.execute(
                _UPDATE_RECORD,
                {"k_kind": kind, "k_clinic_id": clinic_id, "k_key": key, "version": version, "data": text,
                 "patient_key": patient_key, "content_hash": digest, "updated_at": now},
            )
            _insert(self, connection, [(_REC_VERSION, [{**version_row, "version": version}])])
        stored = StoredRecord(kind, clinic_id, key, patient_key, orjson.loads(text), version, digest, created_at, now)
        self._written.append(stored)
        return stored

    def list(
        self,
        kind: str,
        *,
        clinic_id: str | None = None,
        patient_key: str | None = None,
        after: tuple[str, str] | None = None,
        limit: int = 50,
    ) -> list[StoredRecord]:
        """Records of a kind ordered by (clinic, key); `after` is the last (clinic, key) seen."""
        query = sa.select(*_RECORD_COLUMNS).where(_REC.c.kind == kind)
        if clinic_id is not None:
            query = query.where(_REC.c.clinic_id == clinic_id)
        if patient_key is not None:
            query = query.where(_REC.c.patient_key == patient_key)
        if after is not None:
            query = query.where(sa.tuple_(_REC.c.clinic_id, _REC.c.key) > sa.tuple_(*after))
        query = query.order_by(_REC.c.clinic_id, _REC.c.key).limit(limit)
        return [_record(r) for r in self._connection().execute(query)]

    def for_patient(self, clinic_id: str, patient_key: str, kinds: Sequence[str] | None = None) -> list[StoredRecord]:
        query = sa.select(*_RECORD_COLUMNS).where(_REC.c.clinic_id == clinic_id, _REC.c.patient_key == patient_key)
        if kinds:
            query = query.where(_REC.c.kind.in_(list(kinds)))
        return [_record(r) for r in self._connection().execute(query.order_by(_REC.c.kind, _REC.c.key))]

    def versions(self, kind: str, clinic_id: str, key: str) -> list[tuple[int, dict, dt.datetime]]:
        """(version, data, recorded_at) of every version, oldest first."""
        v = _REC_VERSION.c
        query = (
            sa.select(v.version, v.data, v.recorded_at)
            .where(v.kind == kind, v.clinic_id == clinic_id, v.key == key)
            .order_by(v.version)
        )
        return [(r[0], orjson.loads(r[1]), r[2]) for r in self._connection().execute(query)]

    def count(self) -> int:
        return int(self._connection().execute(sa.select(sa.func.count()).select_from(_REC)).scalar_one())


# --------------------------------------------------------------------------- FHIR resources


@dataclass(frozen=True)
class ResourceWrite:
    """What writing (or deleting) one resource did."""

    resource_type: str
    id: str
    version_id: int
    changed: bool
    deleted: bool
    patient_id: str | None
    clinic_id: str | None
    last_updated: dt.datetime


@dataclass(frozen=True)
class StoredResource:
    resource_type: str
    id: str
    version_id: int
    last_updated: dt.datetime
    json: bytes | None
    """Canonical JSON with meta.versionId/lastUpdated; None for a deletion tombstone."""
    deleted: bool = False
    patient_id: str | None = None
    clinic_id: str | None = None


@dataclass(frozen=True)
class ResourceInput:
    """One resource to write in a batch, with its owning clinic and source record."""

    resource: dict
    clinic_id: str | None = None
    source: Source | None = None


@dataclass(frozen=True)
class BatchWrite:
    """What `FhirResourceRepository.save_many` did."""

    writes: list[ResourceWrite]
    """One per input, in input order (changed=False for an identical rewrite)."""
    deleted: list[ResourceWrite]
    """Resources of `prune_source` the batch no longer produces, deleted (ordered by type, id)."""


def format_instant(moment: dt.datetime) -> str:
    """FHIR instant in UTC with milliseconds, e.g. 2026-03-02T14:00:00.123+00:00."""
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds")


def _without_version_meta(resource: dict) -> dict:
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    body = {k: v for k, v in resource.items() if k != "meta"}
    if meta:
        body["meta"] = meta
    return body


_RESOURCE_COLUMNS = (
    _RES.c.resource_type, _RES.c.id, _RES.c.version_id, _RES.c.last_updated, _RES.c.json, _RES.c.patient_id,
    _RES.c.clinic_id,
)


def _stored(row: Any) -> StoredResource:
    return StoredResource(row[0], row[1], row[2], row[3], row[4], False, row[5], row[6])


_KEY_IN = sa.tuple_(_RES.c.resource_type, _RES.c.id).in_(sa.bindparam("keys", expanding=True))
_OF_SOURCE = sa.and_(
    _RES.c.source_kind == sa.bindparam("source_kind"),
    _RES.c.source_clinic_id == sa.bindparam("source_clinic_id"),
    _RES.c.source_key == sa.bindparam("source_key"),
)
_CURRENT_COLUMNS = (
    sa.literal_column("0").label("what"), _RES.c.resource_type, _RES.c.id, _RES.c.version_id, _RES.c.last_updated,
    _RES.c.json, _RES.c.content_hash, _RES.c.patient_id, _RES.c.clinic_id, _RES.c.source_kind,
    _RES.c.source_clinic_id, _RES.c.source_key,
)
_NEWEST_HISTORY = (
    sa.select(
        sa.literal_column("1"), _HIST.c.resource_type, _HIST.c.id, sa.func.max(_HIST.c.version_id),
        *[sa.null()] * (len(_CURRENT_COLUMNS) - 4),
    )
    .where(sa.tuple_(_HIST.c.resource_type, _HIST.c.id).in_(sa.bindparam("history_keys", expanding=True)))
    .group_by(_HIST.c.resource_type, _HIST.c.id)
)
# The state a batch starts from, in one round trip: current rows of the batch's resources (and
# of its prune source), and the newest history version of each (for ids deleted before).
_BATCH_STATE = sa.union_all(sa.select(*_CURRENT_COLUMNS).where(_KEY_IN), _NEWEST_HISTORY)
_BATCH_STATE_WITH_SOURCE = sa.union_all(sa.select(*_CURRENT_COLUMNS).where(sa.or_(_KEY_IN, _OF_SOURCE)), _NEWEST_HISTORY)
# PostgreSQL: the same as primary-key probes over two text arrays - constant SQL text (prepared
# once per connection; the expanding IN lists above are re-rendered on every execution) and no
# OR of conjunctions for the planner to misjudge. A row found both by key and by source comes
# twice (same content; the caller keeps one).
_PG_CURRENT = (
    "SELECT 0 AS what, r.resource_type, r.id, r.version_id, r.last_updated, r.json, r.content_hash, r.patient_id, "
    "r.clinic_id, r.source_kind, r.source_clinic_id, r.source_key FROM {source} "
)
_PG_KEYS = "unnest(CAST(%(types)s AS text[]), CAST(%(ids)s AS text[])) AS k(resource_type, id)"
_PG_BY_KEY = _PG_CURRENT.format(source=f"{_PG_KEYS} JOIN fhir_resource r ON r.resource_type = k.resource_type AND r.id = k.id")
_PG_BY_SOURCE = _PG_CURRENT.format(source="fhir_resource r") + (
    "WHERE r.source_kind = %(source_kind)s AND r.source_clinic_id = %(source_clinic_id)s AND r.source_key = %(source_key)s"
)
_PG_NEWEST_HISTORY = (
    "SELECT 1, h.resource_type, h.id, max(h.version_id), NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL "
    f"FROM {_PG_KEYS} JOIN fhir_resource_history h ON h.resource_type = k.resource_type AND h.id = k.id "
    "GROUP BY h.resource_type, h.id"
)
_BATCH_STATE_PG = f"{_PG_BY_KEY} UNION ALL {_PG_NEWEST_HISTORY}"  # driver_execute SQL
_BATCH_STATE_WITH_SOURCE_PG = f"{_PG_BY_KEY} UNION ALL {_PG_BY_SOURCE} UNION ALL {_PG_NEWEST_HISTORY}"

_SELECT_RESOURCE = sa.select(*_RESOURCE_COLUMNS).where(
    _RES.c.resource_type == sa.bindparam("resource_type"), _RES.c.id == sa.bindparam("id")
)
_SELECT_BY_SOURCE = (
    sa.select(*_RESOURCE_COLUMNS).where(_OF_SOURCE).order_by(_RES.c.resource_type, _RES.c.id)
)
_UPDATE_RESOURCE = sa.update(_RES).where(
    _RES.c.resource_type == sa.bindparam("k_resource_type"), _RES.c.id == sa.bindparam("k_id")
)
_DELETE_RESOURCES = sa.delete(_RES).where(_KEY_IN)
_DELETE_TOKENS = sa.delete(_TOKEN).where(
    sa.tuple_(_TOKEN.c.resource_type, _TOKEN.c.resource_id).in_(sa.bindparam("keys", expanding=True))
)
_RESOURCE_VALUE_NAMES = (
    "version_id", "last_updated", "json", "content_hash", "patient_id", "clinic_id", "status", "date_start", "date_end",
    "source_kind", "source_clinic_id", "source_key",
)


class _Current:
    """The current row of a resource while a batch is worked out (mutable)."""

    __slots__ = ("version_id", "last_updated", "json", "content_hash", "patient_id", "clinic_id", "source", "in_db")

    def __init__(self, row: Any) -> None:
        self.version_id: int = row[3]
        self.last_updated: dt.datetime = row[4]
        self.json: bytes = row[5]
        self.content_hash: str = row[6]
        self.patient_id: str | None = row[7]
        self.clinic_id: str | None = row[8]
        self.source: Source | None = (row[9], row[10], row[11]) if row[9] is not None else None
        self.in_db = True


class FhirResourceRepository:
    """Current FHIR resources with their search index; earlier versions go to history. With
    `pending`, INSERTs are queued as in `RecordRepository`."""

    def __init__(self, session: StoreSession, clock: Clock, pending: Any = None) -> None:
        self._session = session
        self._clock = clock
        self._pending = pending
        self._cached_connection: sa.Connection | None = None

    def _connection(self) -> sa.Connection:
        return _connection_of(self)

    def save(
        self, resource: dict, *, clinic_id: str | None = None, source: Source | None = None
    ) -> ResourceWrite:
        """Write a resource; a no-op (changed=False) when its content equals the stored one
        (meta.versionId and meta.lastUpdated are ignored and set here)."""
        return self.save_many([ResourceInput(resource, clinic_id, source)]).writes[0]

    def save_many(
        self, items: Sequence[ResourceInput], *, prune_source: Source | None = None, presume_new: bool = False
    ) -> BatchWrite:
        """Write resources as `save` does, one after the other, in a few statements; with
        `prune_source`, then delete (as `delete` does) every current resource of that source
        the batch did not write with that source.

        `presume_new`: the caller knows that no resource of `prune_source` exists - the first
        write of a record (its resources are written only with it, in its transaction, and
        records are not deleted). On PostgreSQL, when every item has that source, the state
        read is then skipped and each resource written as version 1. Where that is wrong - the
        id is current from elsewhere, or was deleted and has a history - the write's INSERT
        fails as a unique violation (the primary key, or _PG_INSERT_GUARDS), the unit of work
        reports ConcurrentWriteError, and the caller retries without presuming."""
        now = self._clock()
        stamp = format_instant(now)
        keys = list(dict.fromkeys((item.resource["resourceType"], item.resource["id"]) for item in items))
        if presume_new and self._presumable(items, prune_source):
            current, newest_history = {}, {}
        else:
            current, newest_history = self._batch_state(keys, prune_source)
        writes: list[ResourceWrite] = []
        history: list[dict] = []
        final_rows: dict[tuple[str, str], dict] = {}
        source_moves: dict[tuple[str, str], Source] = {}
        tokens: dict[tuple[str, str], set[tuple[str, str, str]]] = {}
        for item in items:
            resource, clinic_id, source = item.resource, item.clinic_id, item.source
            key = (resource["resourceType"], resource["id"])
            content = _without_version_meta(resource)
            digest = content_hash(content)
            row = current.get(key)
            if row is not None and row.content_hash == digest:
                if source is not None and row.source != source:
                    row.source = source
                    if key in final_rows:
                        final_rows[key].update(source_kind=source[0], source_clinic_id=source[1], source_key=source[2])
                    else:
                        source_moves[key] = source
                writes.append(
                    ResourceWrite(key[0], key[1], row.version_id, False, False, row.patient_id, row.clinic_id, row.last_updated)
                )
                continue
            if row is not None:
                history.append(
                    {"resource_type": key[0], "id": key[1], "version_id": row.version_id,
                     "last_updated": row.last_updated, "json": row.json, "deleted": False}
                )
                version_id = row.version_id + 1
            else:
                version_id = newest_history.get(key, 0) + 1
            meta = dict(content.get("meta") or {})
            meta["versionId"] = str(version_id)
            meta["lastUpdated"] = stamp
            body = canonical_json({**content, "meta": meta})
            patient_id = patient_id_of(resource)
            start, end = date_span(resource)
            status = resource.get("status") if isinstance(resource.get("status"), str) else None
            final_rows[key] = {
                "version_id": version_id, "last_updated": now, "json": body, "content_hash": digest,
                "patient_id": patient_id, "clinic_id": clinic_id, "status": status, "date_start": start, "date_end": end,
                "source_kind": source[0] if source else None, "source_clinic_id": source[1] if source else None,
                "source_key": source[2] if source else None,
            }
            source_moves.pop(key, None)
            tokens[key] = search_tokens(resource)
            if row is None:
                row = current[key] = _Current.__new__(_Current)
                row.in_db = False
            row.version_id, row.last_updated, row.json, row.content_hash = version_id, now, body, digest
            row.patient_id, row.clinic_id, row.source = patient_id, clinic_id, source
            writes.append(ResourceWrite(key[0], key[1], version_id, True, False, patient_id, clinic_id, now))

        deleted: list[ResourceWrite] = []
        if prune_source is not None:
            kept = {(i.resource["resourceType"], i.resource["id"]) for i in items if i.source == prune_source}
            for key in sorted(k for k, r in current.items() if r.source == prune_source and k not in kept):
                row = current[key]
                history.append(
                    {"resource_type": key[0], "id": key[1], "version_id": row.version_id,
                     "last_updated": row.last_updated, "json": row.json, "deleted": False}
                )
                history.append(
                    {"resource_type": key[0], "id": key[1], "version_id": row.version_id + 1,
                     "last_updated": now, "json": None, "deleted": True}
                )
                deleted.append(ResourceWrite(key[0], key[1], row.version_id + 1, True, True, row.patient_id, row.clinic_id, now))
        self._apply(current, history, final_rows, source_moves, tokens, [(d.resource_type, d.id) for d in deleted])
        return BatchWrite(writes, deleted)

    def _presumable(self, items: Sequence[ResourceInput], source: Source | None) -> bool:
        return (
            source is not None
            and all(item.source == source for item in items)
            and self._connection().dialect.name == "postgresql"
        )

    def _batch_state(
        self, keys: list[tuple[str, str]], prune_source: Source | None
    ) -> tuple[dict[tuple[str, str], _Current], dict[tuple[str, str], int]]:
        current: dict[tuple[str, str], _Current] = {}
        newest_history: dict[tuple[str, str], int] = {}
        if not keys and prune_source is None:
            return current, newest_history
        connection = self._connection()
        params: dict[str, Any]
        postgres = connection.dialect.name == "postgresql"
        if postgres:
            params = {"types": [k[0] for k in keys], "ids": [k[1] for k in keys]}
        else:  # an empty IN list is rendered as a never-true condition by SQLAlchemy
            params = {"keys": keys, "history_keys": keys}
        if prune_source is not None:
            params.update(source_kind=prune_source[0], source_clinic_id=prune_source[1], source_key=prune_source[2])
        if postgres:
            sql = _BATCH_STATE_PG if prune_source is None else _BATCH_STATE_WITH_SOURCE_PG
            rows: Iterable[Any] = driver_execute(connection, sql, params, fetch=True)
        else:
            rows = connection.execute(_BATCH_STATE if prune_source is None else _BATCH_STATE_WITH_SOURCE, params)
        for row in rows:
            if row[0] == 0:
                current[(row[1], row[2])] = _Current(row)
            elif row[3] is not None:
                newest_history[(row[1], row[2])] = row[3]
        return current, newest_history

    def _apply(
        self,
        current: Mapping[tuple[str, str], _Current],
        history: list[dict],
        final_rows: dict[tuple[str, str], dict],
        source_moves: dict[tuple[str, str], Source],
        tokens: dict[tuple[str, str], set[tuple[str, str, str]]],
        deleted: list[tuple[str, str]],
    ) -> None:
        connection = self._connection()
        updates = [
            {"k_resource_type": k[0], "k_id": k[1], **values} for k, values in final_rows.items() if current[k].in_db
        ]
        if updates:
            connection.execute(_UPDATE_RESOURCE, updates)
        if source_moves:
            connection.execute(
                _UPDATE_RESOURCE,
                [
                    {"k_resource_type": k[0], "k_id": k[1], "source_kind": s[0], "source_clinic_id": s[1], "source_key": s[2]}
                    for k, s in source_moves.items()
                ],
            )
        inserts = [
            {"resource_type": k[0], "id": k[1], **values} for k, values in final_rows.items() if not current[k].in_db
        ]
        if deleted:
            connection.execute(_DELETE_RESOURCES, {"keys": deleted})
        # a resource without a current row has no tokens (they go with the row), so only
        # rewritten and deleted resources need their old tokens removed
        stale = [k for k in final_rows if current[k].in_db] + deleted
        if stale:
            connection.execute(_DELETE_TOKENS, {"keys": stale})
        token_rows = [
            {"resource_type": k[0], "resource_id": k[1], "param": p, "system": s, "value": v,
             "patient_id": final_rows[k]["patient_id"]}
            for k, found in tokens.items()
            for p, s, v in sorted(found)
        ]
        _insert(self, connection, [(_HIST, history), (_RES, inserts), (_TOKEN, token_rows)])

    def delete(self, resource_type: str, resource_id: str) -> ResourceWrite | None:
        """Delete the current version: it moves to history, followed by a tombstone version."""
        row = self._connection().execute(
            sa.select(*_CURRENT_COLUMNS).where(_RES.c.resource_type == resource_type, _RES.c.id == resource_id)
        ).first()
        if row is None:
            return None
        state = _Current(row)
        now = self._clock()
        key = (resource_type, resource_id)
        history = [
            {"resource_type": resource_type, "id": resource_id, "version_id": state.version_id,
             "last_updated": state.last_updated, "json": state.json, "deleted": False},
            {"resource_type": resource_type, "id": resource_id, "version_id": state.version_id + 1,
             "last_updated": now, "json": None, "deleted": True},
        ]
        self._apply({key: state}, history, {}, {}, {}, [key])
        return ResourceWrite(resource_type, resource_id, state.version_id + 1, True, True, state.patient_id, state.clinic_id, now)

    def read(self, resource_type: str, resource_id: str) -> StoredResource | None:
        row = self._connection().execute(_SELECT_RESOURCE, {"resource_type": resource_type, "id": resource_id}).first()
        return _stored(row) if row is not None else None

    def read_version(self, resource_type: str, resource_id: str, version_id: int) -> StoredResource | None:
        current = self.read(resource_type, resource_id)
        if current is not None and current.version_id == version_id:
            return current
        h = _HIST.c
        old = self._connection().execute(
            sa.select(h.version_id, h.last_updated, h.json, h.deleted).where(
                h.resource_type == resource_type, h.id == resource_id, h.version_id == version_id
            )
        ).first()
        if old is None:
            return None
        return StoredResource(resource_type, resource_id, old[0], old[1], old[2], old[3])

    def history(self, resource_type: str, resource_id: str) -> list[StoredResource]:
        """Every version, newest first."""
        h = _HIST.c
        query = (
            sa.select(h.version_id, h.last_updated, h.json, h.deleted)
            .where(h.resource_type == resource_type, h.id == resource_id)
            .order_by(h.version_id.desc())
        )
        older = [StoredResource(resource_type, resource_id, r[0], r[1], r[2], r[3]) for r in self._connection().execute(query)]
        current = self.read(resource_type, resource_id)
        return ([current] if current else []) + older

    def by_source(self, kind: str, clinic_id: str, key: str) -> list[StoredResource]:
        rows = self._connection().execute(
            _SELECT_BY_SOURCE, {"source_kind": kind, "source_clinic_id": clinic_id, "source_key": key}
        )
        return [_stored(r) for r in rows]

    def for_patient(self, patient_id: str) -> list[StoredResource]:
        query = (
            sa.select(*_RESOURCE_COLUMNS)
            .where(_RES.c.patient_id == patient_id)
            .order_by(_RES.c.resource_type, _RES.c.date_start, _RES.c.id)
        )
        return [_stored(r) for r in self._connection().execute(query)]

    def tokens(self, resource_type: str, resource_id: str) -> set[tuple[str, str, str]]:
        t = _TOKEN.c
        query = sa.select(t.param, t.system, t.value).where(t.resource_type == resource_type, t.resource_id == resource_id)
        return {(r[0], r[1], r[2]) for r in self._connection().execute(query)}

    def count(self) -> int:
        return int(self._connection().execute(sa.select(sa.func.count()).select_from(_RES)).scalar_one())


# --------------------------------------------------------------------------- idempotency


@dataclass(frozen=True)
class StoredResponse:
    request_hash: str
    status: str
    body: bytes


_SELECT_IDEMPOTENCY = sa.select(_IDEM.c.request_hash, _IDEM.c.status, _IDEM.c.body).where(
    _IDEM.c.key == sa.bindparam("key"), _IDEM.c.scope == sa.bindparam("scope")
)
_INSERT_IDEMPOTENCY = sa.insert(_IDEM)


class IdempotencyRepository:
    """Responses of requests sent with an `Idempotency-Key`, per (key, scope)."""

    def __init__(self, session: StoreSession, clock: Clock) -> None:
        self._session = session
        self._clock = clock
        self._cached_connection: sa.Connection | None = None

    def get(self, key: str, scope: str) -> StoredResponse | None:
        row = _connection_of(self).execute(_SELECT_IDEMPOTENCY, {"key": key, "scope": scope}).first()
        return StoredResponse(row[0], row[1], row[2]) if row is not None else None

    def save(self, key: str, scope: str, *, request_hash: str, status: str, body: bytes) -> None:
        _connection_of(self).execute(
            _INSERT_IDEMPOTENCY,
            {"key": key, "scope": scope, "request_hash": request_hash, "status": status, "body": body,
             "created_at": self._clock()},
        )
