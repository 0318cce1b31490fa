"""Write-behind of a unit of work's INSERTs: `PendingInserts`.

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
"""

from __future__ import annotations

from typing import Any, Sequence

import sqlalchemy as sa
from sqlalchemy import event

from . import repository

_KEY = "service.pending_inserts"


class PendingInserts:
    """Rows to insert, in the order they were added (per table)."""

    def __init__(self) -> None:
        self._batches: list[tuple[sa.Table, list[dict]]] = []

    def __bool__(self) -> bool:
        return bool(self._batches)

    def add(self, batches: Sequence[tuple[sa.Table, Sequence[dict]]]) -> None:
        """Queue rows (each batch's rows have the same keys, as for `insert_rows`)."""
        self._batches.extend((table, list(rows)) for table, rows in batches if rows)

    def flush(self, connection: sa.Connection) -> None:
        """Insert everything queued, in one statement on PostgreSQL."""
        if not self._batches:
            return
        batches, self._batches = self._batches, []  # emptied first: the insert runs the listener too
        repository.insert_rows(connection, _merged(batches))

    def discard(self) -> None:
        self._batches = []


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


def attach(connection: sa.Connection, pending: PendingInserts) -> dict:
    """Send `pending` before any other statement executed on `connection` until `detach`
    with the returned handle (the connection's info dictionary, which outlives the Connection)."""
    engine = connection.engine
    if not event.contains(engine, "before_execute", _flush_first):
        event.listen(engine, "before_execute", _flush_first)
    info = connection.info
    info[_KEY] = pending
    return info


def detach(handle: dict, pending: PendingInserts) -> None:
    """Stop watching for `pending` (before the connection goes back to the pool)."""
    if handle.get(_KEY) is pending:
        del handle[_KEY]


def _flush_first(connection: sa.Connection, *_: Any) -> None:
    pending = connection.info.get(_KEY)
    if pending:
        pending.flush(connection)
