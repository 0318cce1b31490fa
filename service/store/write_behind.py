"""Write-behind of a unit of work's INSERTs (`PendingInserts`) and, on PostgreSQL, its
transaction begun only when it first writes (`attach(..., lazy_begin=True)`).

A session write inserts into six tables (record, record_version, fhir_resource and its history,
fhir_search_token, outbox). Sent as they are produced, that is three INSERT statements, each a
round trip with its own executor run. The unit of work instead collects them here and sends
them as one statement when it commits (`insert_rows`: on PostgreSQL one INSERT per table
chained as data-modifying CTEs, rows as JSON parameters).

Nothing reads around a pending row: while rows are pending on a connection (`attach`), any
other statement executed on it - a read, an UPDATE, an ORM flush - first sends them (a
`before_execute` listener on the engine), so statements still take effect in the order the
code issued them. Constraint violations surface at that point or at commit, and the unit of
work turns them into a retry (ConcurrentWriteError) as before.

Lazy BEGIN (PostgreSQL): the unit of work's connection runs in autocommit mode, and the
listener sends BEGIN before the first statement that is not a plain SELECT. Reads before it
run as they would in the transaction (READ COMMITTED takes a snapshot per statement either
way; no SELECT here locks rows); a write that is a single statement at commit - the common
case, everything queued here - is atomic on its own and needs neither BEGIN nor COMMIT (two
round trips saved); anything more runs inside one transaction as before.
"""

from __future__ import annotations

from typing import Any, Sequence

import sqlalchemy as sa
from sqlalchemy import event

from . import repository

WATCH_KEY = "service.pending_inserts"
"""Where a watched connection's info dictionary holds its unit of work's queue."""


class PendingInserts:
    """Rows to insert, in the order they were added (per table), and the record versions the
    unit of work relied on without reading them (checked by the same statement)."""

    def __init__(self) -> None:
        self._batches: list[tuple[sa.Table, list[dict]]] = []
        self._required: list[repository.RecordVersion] = []

    def __bool__(self) -> bool:
        return bool(self._batches or self._required)

    def add(self, batches: Sequence[tuple[sa.Table, Sequence[dict]]]) -> None:
        """Queue rows (each batch's rows have the same keys, as for `insert_rows`)."""
        self._batches.extend((table, list(rows)) for table, rows in batches if rows)

    def require(self, versions: Sequence[repository.RecordVersion]) -> None:
        """The statement that sends the queue fails unless these are the current versions."""
        self._required.extend(versions)

    def flush(self, connection: sa.Connection) -> None:
        """Insert everything queued, in one statement on PostgreSQL."""
        if not self:
            return
        # emptied first: the insert runs the listener too
        batches, required, self._batches, self._required = self._batches, self._required, [], []
        repository.insert_rows(connection, _merged(batches), required)

    def discard(self) -> None:
        self._batches = []
        self._required = []


def _merged(batches: list[tuple[sa.Table, list[dict]]]) -> list[tuple[sa.Table, list[dict]]]:
    """One batch per (table, columns), in order of first appearance, rows in the order added
    (so outbox sequence numbers follow the order of the writes)."""
    merged: dict[tuple[str, tuple[str, ...]], tuple[sa.Table, list[dict]]] = {}
    for table, rows in batches:
        key = (table.name, tuple(rows[0]))
        if key in merged:
            merged[key][1].extend(rows)
        else:
            merged[key] = (table, list(rows))
    return list(merged.values())


class _Watch:
    __slots__ = ("pending", "lazy_begin")

    def __init__(self, pending: PendingInserts, lazy_begin: bool) -> None:
        self.pending = pending
        self.lazy_begin = lazy_begin


def attach(connection: sa.Connection, pending: PendingInserts, *, lazy_begin: bool = False) -> dict:
    """Send `pending` before any other statement executed on `connection` until `detach` with
    the returned handle (the connection's info dictionary, which outlives the Connection).
    `lazy_begin`: the connection is in autocommit mode (PostgreSQL); BEGIN goes out before
    the first statement that is not a plain SELECT."""
    engine = connection.engine
    if not event.contains(engine, "before_execute", before_statement):
        event.listen(engine, "before_execute", before_statement)
    info = connection.info
    info[WATCH_KEY] = _Watch(pending, lazy_begin)
    return info


def detach(handle: dict, pending: PendingInserts) -> None:
    """Stop watching for `pending` (before the final flush, and before the connection goes
    back to the pool)."""
    watch = handle.get(WATCH_KEY)
    if watch is not None and watch.pending is pending:
        del handle[WATCH_KEY]


def begin_if_idle(connection: sa.Connection) -> None:
    """BEGIN on an autocommit PostgreSQL connection outside a transaction (psycopg then sends
    COMMIT or ROLLBACK on the DBAPI commit/rollback, as the server is in a transaction)."""
    driver: Any = connection.connection.driver_connection
    if driver.info.transaction_status == driver.info.transaction_status.IDLE:
        driver.execute("BEGIN")


def is_plain_read(statement: Any) -> bool:
    """A SELECT that takes no row locks (text or Core)."""
    if isinstance(statement, str):
        text = statement
    elif getattr(statement, "is_select", False) and not isinstance(statement, sa.TextClause):
        return getattr(statement, "_for_update_arg", None) is None
    elif isinstance(statement, sa.TextClause) or hasattr(statement, "text"):
        text = statement.text
    else:
        return False
    head = text.lstrip(" \t\r\n(")[:6].upper()  # "(SELECT ...) UNION ALL (SELECT ...)" is a read too
    return head == "SELECT" and " FOR " not in text.upper()


def before_statement(connection: sa.Connection, statement: Any, *_: Any) -> None:
    """What runs before every statement on a watched connection (the engine's `before_execute`
    listener, and `repository.driver_execute` for statements sent to the driver directly):
    lazy BEGIN before a write, then the pending INSERTs."""
    watch = connection.info.get(WATCH_KEY)
    if watch is None:
        return
    if watch.lazy_begin and (watch.pending or not is_plain_read(statement)):
        begin_if_idle(connection)
    watch.pending.flush(connection)
