"""Database engine: SQLite (embedded default) or PostgreSQL via psycopg 3.

SQLite gets WAL journaling, foreign keys, a busy timeout, and explicit transactions (the
pysqlite driver's implicit ones would let a read-then-write race); write transactions
(`sqlite_begin="immediate"` execution option, used by the unit of work) take the write lock
up front so two writers wait for each other instead of failing on lock upgrade.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

T = TypeVar("T")

SQLITE_BUSY_TIMEOUT_MS = 10_000


def make_engine(database_url: str, *, echo: bool = False) -> Engine:
    """An engine for `database_url`; creates the SQLite file's folder when needed."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(database_url, echo=echo)
    if url.get_backend_name() == "postgresql":
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        # Sized for uvicorn's threadpool (40 threads run the blocking use cases); connections
        # are recycled after 30 minutes instead of pinged before every checkout (a round trip
        # per request), and a dropped connection surfaces as an error the caller retries.
        return create_engine(
            url, echo=echo, pool_size=POSTGRES_POOL_SIZE, max_overflow=POSTGRES_POOL_OVERFLOW,
            pool_recycle=1800, pool_timeout=30,
        )
    raise ValueError(f"unsupported database backend: {url.get_backend_name()}")


POSTGRES_POOL_SIZE = 20
POSTGRES_POOL_OVERFLOW = 20


def _sqlite_engine(database_url: str, *, echo: bool) -> Engine:
    url = make_url(database_url)
    if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
        Path(url.database).expanduser().resolve().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        echo=echo,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves (see _on_begin)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:  # type: ignore[no-untyped-def]
        mode = connection.get_execution_options().get("sqlite_begin", "deferred")
        connection.exec_driver_sql("BEGIN IMMEDIATE" if mode == "immediate" else "BEGIN")

    return engine


def engine_scoped(engine: Engine, name: str, make: Callable[[], T]) -> T:
    """The object kept on `engine` under `name`, made by `make` the first time (per-engine state:
    the record cache, the statistics watch, the autocommit variant of the engine)."""
    kept = engine.__dict__.get(name)
    if kept is None:
        kept = engine.__dict__[name] = make()
    return kept


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def database_answers(engine) -> bool:
    """True when the database answers a trivial query (health checks)."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return False
    return True
