"""Set-based statements of the sync store: many delivery rows written by ONE statement whose
rows travel as one JSON parameter, on SQLite (json_each) and PostgreSQL (json_array_elements).

The worker takes the outbox in and records outcomes hundreds of rows at a time. As
`executemany`, SQLAlchemy processes every row's parameters in Python and the database runs
the statement once per row; that bookkeeping cost the worker more CPU per resource than
building and sending the Bundles. Here a batch is one `orjson.dumps`, one statement and one
executor run. The SQL is the same on both databases except for the JSON row source.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import cache
from typing import Any

import orjson
import sqlalchemy as sa

from .sync_tables import SyncDeliveryRow

_TS = SyncDeliveryRow.__table__.c.updated_at.type  # type: ignore[attr-defined]


def json_rows(dialect: str, columns: Sequence[tuple[str, str]]) -> str:
    """A SELECT of the rows in the JSON parameter `:rows` (an array of arrays, values in
    `columns` order) as columns named and typed by `columns` ((name, SQL type) pairs)."""
    if dialect == "postgresql":
        cols = ", ".join(f"CAST(e->>{i} AS {sql_type}) AS {name}" for i, (name, sql_type) in enumerate(columns))
        return f"SELECT {cols} FROM json_array_elements(CAST(:rows AS json)) AS e"
    cols = ", ".join(f"json_extract(value, '$[{i}]') AS {name}" for i, (name, _) in enumerate(columns))
    return f"SELECT {cols} FROM json_each(:rows)"


def stamp(engine: sa.Engine, moment: dt.datetime) -> Any:
    """`moment` as the database stores a UTC timestamp column (a bind value for text SQL)."""
    convert = _TS._cached_bind_processor(engine.dialect)
    return convert(moment) if convert else moment


_INGEST_COLUMNS = (
    ("resource_type", "text"), ("resource_id", "text"), ("version_id", "integer"), ("deleted", "boolean"),
    ("seq", "bigint"), ("partition_key", "text"), ("patient_id", "text"), ("clinic_id", "text"),
)
_IN_FLIGHT = "sync_delivery.status IN ('sending', 'retrying')"
_UPSERT_DELIVERIES = """
INSERT INTO sync_delivery (target, resource_type, resource_id, version_id, deleted, seq, partition_key, patient_id,
                           clinic_id, status, attempts, next_attempt_at, created_at, updated_at)
SELECT :target, u.resource_type, u.resource_id, u.version_id, u.deleted, u.seq, u.partition_key, u.patient_id,
       u.clinic_id, 'pending', 0, :stamp, :stamp, :stamp
FROM ({source}) AS u WHERE true
ON CONFLICT (target, resource_type, resource_id) DO UPDATE SET
    version_id = excluded.version_id, deleted = excluded.deleted, seq = excluded.seq,
    partition_key = excluded.partition_key, patient_id = excluded.patient_id, clinic_id = excluded.clinic_id,
    status = CASE WHEN {in_flight} THEN sync_delivery.status
                  WHEN COALESCE(sync_delivery.sent_version_id, 0) >= excluded.version_id THEN sync_delivery.status
                  ELSE 'pending' END,
    attempts = CASE WHEN sync_delivery.status = 'dead' THEN 0 ELSE sync_delivery.attempts END,
    next_attempt_at = CASE WHEN {in_flight} THEN sync_delivery.next_attempt_at ELSE excluded.next_attempt_at END,
    last_error = CASE WHEN sync_delivery.status = 'dead' THEN NULL ELSE sync_delivery.last_error END,
    blocked_by = CASE WHEN sync_delivery.status = 'dead' THEN NULL ELSE sync_delivery.blocked_by END,
    updated_at = excluded.updated_at
WHERE excluded.version_id > sync_delivery.version_id
"""


@cache
def _statement(template: str, dialect: str, columns: tuple[tuple[str, str], ...]) -> sa.TextClause:
    """`template` with its JSON row source for `dialect`, built once."""
    return sa.text(template.format(source=json_rows(dialect, columns), in_flight=_IN_FLIGHT))


def upsert_deliveries(connection: sa.Connection, target: str, rows: Sequence[tuple], moment: dt.datetime) -> None:
    """Insert or refresh the delivery rows of `rows` ((resource_type, resource_id, version_id,
    deleted, seq, partition_key, patient_id, clinic_id), sorted by key): a newer version
    makes an idle row pending again (a row being sent or retried keeps its state; the worker
    sees the newer version when it records the outcome) and revives a dead one."""
    if not rows:
        return
    statement = _statement(_UPSERT_DELIVERIES, connection.dialect.name, _INGEST_COLUMNS)
    connection.execute(statement, {"rows": orjson.dumps(rows).decode(), "target": target,
                                   "stamp": stamp(connection.engine, moment)})


_SENT_COLUMNS = (("rt", "text"), ("rid", "text"), ("v", "integer"), ("tid", "text"), ("tver", "text"))
_RECORD_SENT = """
UPDATE sync_delivery SET
    status = CASE WHEN sync_delivery.version_id > u.v THEN 'pending' ELSE 'sent' END,
    version_id = CASE WHEN sync_delivery.version_id > u.v THEN sync_delivery.version_id ELSE u.v END,
    sent_version_id = u.v, target_id = u.tid, target_version = u.tver, sent_at = :stamp, attempts = 0,
    last_error = NULL, blocked_by = NULL, lease_owner = NULL, lease_until = NULL, next_attempt_at = :stamp,
    updated_at = :stamp
FROM ({source}) AS u
WHERE sync_delivery.target = :target AND sync_delivery.resource_type = u.rt AND sync_delivery.resource_id = u.rid
  AND sync_delivery.lease_owner = :worker
"""


_RECORD_SENT_SQLITE = """
UPDATE sync_delivery SET
    status = CASE WHEN version_id > ?3 THEN 'pending' ELSE 'sent' END,
    version_id = CASE WHEN version_id > ?3 THEN version_id ELSE ?3 END,
    sent_version_id = ?3, target_id = ?4, target_version = ?5, sent_at = ?6, attempts = 0, last_error = NULL,
    blocked_by = NULL, lease_owner = NULL, lease_until = NULL, next_attempt_at = ?6, updated_at = ?6
WHERE target = ?7 AND resource_type = ?1 AND resource_id = ?2 AND lease_owner = ?8
"""


def record_sent(connection: sa.Connection, target: str, worker_id: str, rows: Sequence[tuple], moment: dt.datetime) -> None:
    """Mark delivery rows sent ((resource_type, resource_id, version sent, target id, target
    version) each), only where `worker_id` still holds the lease; a row whose version moved on
    meanwhile goes back to pending. SQLite: the driver's own executemany (a primary-key probe
    per row, in C; SQLite would plan UPDATE ... FROM as a scan of the target's rows per JSON
    row); PostgreSQL: one UPDATE ... FROM the JSON rows."""
    if not rows:
        return
    when = stamp(connection.engine, moment)
    if connection.dialect.name != "postgresql":
        connection.exec_driver_sql(_RECORD_SENT_SQLITE, [(*row, when, target, worker_id) for row in rows])
        return
    statement = _statement(_RECORD_SENT, connection.dialect.name, _SENT_COLUMNS)
    connection.execute(statement, {"rows": orjson.dumps(rows).decode(), "target": target, "worker": worker_id,
                                   "stamp": when})


_KEY_COLUMNS = (("k0", "text"), ("k1", "text"))


def keys_json(keys: Sequence[tuple[str, str]]) -> str:
    """(resource_type, id) pairs as the `:rows` parameter of the statements below."""
    return orjson.dumps([list(k) for k in keys]).decode()


@cache
def resources_by_key(dialect: str, columns: str) -> sa.TextClause:
    """SELECT resource_type, id, <columns> of the current resources whose keys are in `:rows`
    (`keys_json`): a primary-key probe per key, one parameter however many keys (an IN list of
    pairs costs SQLAlchemy a Python call per value)."""
    return sa.text(
        f"SELECT resource_type, id, {columns} FROM fhir_resource "
        f"WHERE (resource_type, id) IN (SELECT k0, k1 FROM ({json_rows(dialect, _KEY_COLUMNS)}) AS k)"
    )


@cache
def mark_sending(dialect: str) -> sa.TextClause:
    """Lease the delivery rows of the keys in `:rows` (`keys_json`) to `:worker` until `:until`."""
    return sa.text(
        "UPDATE sync_delivery SET status = 'sending', lease_owner = :worker, lease_until = :until, updated_at = :now "
        f"WHERE target = :target AND (resource_type, resource_id) IN (SELECT k0, k1 FROM ({json_rows(dialect, _KEY_COLUMNS)}) AS k)"
    )
