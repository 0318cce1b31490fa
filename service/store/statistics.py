"""Planner statistics for a young PostgreSQL database (`after_commit`).

A new database's tables have never been analysed. The write path's prepared statements get
generic plans made without statistics, and PostgreSQL keeps them until the table is analysed.
For the resources' state read, that plan is a hash join over sequential scans of
`fhir_resource` and its history, so each write reads the whole table again.

Autovacuum analyses a table only after 50 changed rows and its next round (one a minute). A
first bulk import outruns that. Measured with autovacuum held off, 3,000 session writes into a
new database: PostgreSQL's CPU per write climbed 2.5 -> 4.4 -> 6.4 -> 8.6 -> 10.3 -> 12.1 ms
over each 500. With one ANALYZE after the first 500 it stayed at 1.8-2.6 ms
(docs/decisions/0011, item 22).

So every `CHECK_EVERY` commits of a process, and only until each write table holding rows has
statistics, a unit of work's commit asks PostgreSQL which of them were never analysed and have
rows. It analyses those; ANALYZE invalidates the cached plans of every connection. An empty
table is left alone: without statistics the planner assumes a few pages and prefers the
indexes, while statistics saying "empty" would make it prefer scans until autovacuum caught
up. Checking stops once every write table has statistics (until then it is one catalog query
per `CHECK_EVERY` commits). SQLite: nothing to do.

The check runs in the thread of the commit that reaches the count, after the commit. A young
database's tables are small, so that write waits a few milliseconds, once. A database restored
without statistics (pg_restore, or pg_upgrade before PostgreSQL 18) has large tables. There the
first check analyses them, about 30,000 sampled rows each, and one write waits for that once.
The usual advice after a restore - run ANALYZE - avoids it.
"""

from __future__ import annotations

import logging
import threading

import sqlalchemy as sa

from .db import engine_scoped

log = logging.getLogger(__name__)

CHECK_EVERY = 500
"""Commits between checks."""

WRITE_TABLES = ("record", "record_version", "fhir_resource", "fhir_resource_history", "fhir_search_token", "outbox")
"""The tables a record write inserts into, whose statements are prepared on every connection."""

_WITHOUT_STATISTICS = sa.text(
    "SELECT t FROM unnest(CAST(:tables AS text[])) AS t WHERE NOT EXISTS "
    "(SELECT 1 FROM pg_stats s WHERE s.schemaname = current_schema() AND s.tablename = t) ORDER BY t"
)
"""Write tables without column statistics (catalog state, so exact at once; the activity
counters of pg_stat_user_tables reach other sessions only about a second later)."""


class StatisticsWatch:
    """Per engine: counts commits and, every `CHECK_EVERY`, analyses the write tables that
    have rows but no statistics yet; stops once every write table has statistics."""

    def __init__(self, engine: sa.Engine) -> None:
        self._engine = engine
        self._commits = 0
        self._lock = threading.Lock()
        self.done = engine.dialect.name != "postgresql"

    def after_commit(self) -> None:
        if self.done:
            return
        with self._lock:
            self._commits += 1
            if self._commits % CHECK_EVERY:
                return
        self.refresh()

    def refresh(self) -> list[str]:
        """Analyse the write tables that have rows and no statistics; the names analysed."""
        tables = {"tables": list(WRITE_TABLES)}
        try:
            with self._engine.connect() as connection:
                quote = connection.dialect.identifier_preparer.quote
                names = [
                    name for name in connection.execute(_WITHOUT_STATISTICS, tables).scalars()
                    if connection.exec_driver_sql(f"SELECT EXISTS (SELECT 1 FROM {quote(name)})").scalar_one()
                ]
                for name in names:
                    connection.exec_driver_sql(f"ANALYZE {quote(name)}")
                connection.commit()
                left = len(connection.execute(_WITHOUT_STATISTICS, tables).all())
        except sa.exc.DBAPIError as error:  # statistics are an optimisation: never fail a write for them
            log.warning("could not refresh planner statistics (%s)", type(error.orig).__name__)
            return []
        self.done = left == 0
        if names:
            log.info("analysed %s: a young database's first planner statistics", ", ".join(names))
        return names


def statistics_watch(engine: sa.Engine) -> StatisticsWatch:
    """The engine's watch (made once, kept on the engine)."""
    return engine_scoped(engine, "_service_statistics", lambda: StatisticsWatch(engine))
