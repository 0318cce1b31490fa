"""The unit of work: one database transaction around everything a use case writes (records,
their FHIR resources with history and tokens, outbox rows, idempotency responses).

    with uow:
        uow.records.save(...)
        uow.resources.save(...)
        uow.outbox.append(...)
        uow.commit()

Leaving the block without `commit()` (or through an exception) rolls everything back.
INSERTs are written behind (service/store/write_behind.py): queued, and sent as one statement
at commit or before any other statement of the transaction. The
same object can be entered again for a new transaction (use cases retry once on a
concurrent-write conflict). `now` is fixed for the transaction, so every resource written
together carries the same `meta.lastUpdated`.
"""

from __future__ import annotations

import abc
import datetime as dt
from typing import Any, Callable, Self

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session

from .coverage_repository import CoverageRepository
from .db import engine_scoped
from .fhir_search import FhirSearchRepository
from .outbox import Outbox
from .repository import FhirResourceRepository, IdempotencyRepository, RecordRepository
from .record_cache import record_cache
from .statistics import statistics_watch
from .write_behind import PendingInserts, attach, detach

Clock = Callable[[], dt.datetime]


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class ConcurrentWriteError(RuntimeError):
    """Another transaction wrote the same row first (unique key taken, lock lost); retry."""


class UnitOfWork(abc.ABC):
    records: RecordRepository
    resources: FhirResourceRepository
    outbox: Outbox
    idempotency: IdempotencyRepository
    search: FhirSearchRepository
    coverage: CoverageRepository
    now: dt.datetime

    @abc.abstractmethod
    def __enter__(self) -> Self: ...

    @abc.abstractmethod
    def __exit__(self, *exc_info: object) -> None: ...

    @abc.abstractmethod
    def commit(self) -> None: ...

    @abc.abstractmethod
    def rollback(self) -> None: ...


class SqlUnitOfWork(UnitOfWork):
    """A unit of work on a SQLAlchemy engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine, clock: Clock = utc_now, *, write: bool = True) -> None:
        self._engine = engine
        self._clock = clock
        self._write = write
        self._session: UnitSession | None = None

    def _transaction_now(self) -> dt.datetime:
        return self.now

    def __enter__(self) -> Self:
        if self._session is not None:
            raise RuntimeError("unit of work is already open")
        moment = self._clock()
        if moment.tzinfo is None:
            raise ValueError("the clock must return timezone-aware datetimes")
        self.now = moment.astimezone(dt.timezone.utc).replace(microsecond=moment.microsecond // 1000 * 1000)
        self._pending = PendingInserts()
        self._session = UnitSession(self._engine, self._pending, write=self._write)
        self.records = RecordRepository(self._session, self._transaction_now, self._pending, record_cache(self._engine))
        self.resources = FhirResourceRepository(self._session, self._transaction_now, self._pending)
        self.outbox = Outbox(self._session, self._transaction_now, batched=True, write_behind=self._pending)
        self.idempotency = IdempotencyRepository(self._session, self._transaction_now)
        self.search = FhirSearchRepository(self._session)
        self.coverage = CoverageRepository(self._session, self._transaction_now)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        session, self._session = self._session, None
        if session is None:
            return
        self.outbox.discard()
        self._pending.discard()
        self.records.discard_written()
        session.close()  # rolls back anything uncommitted; the connection goes back to the pool
        if isinstance(exc, IntegrityError) or _is_lock_conflict(exc):
            raise ConcurrentWriteError("a concurrent transaction wrote the same data") from exc

    def commit(self) -> None:
        if self._session is None:
            raise RuntimeError("unit of work is not open")
        try:
            self.outbox.flush()  # the transaction's outbox rows join the write-behind
            self._session.commit()
        except (IntegrityError, OperationalError) as error:
            if isinstance(error, IntegrityError) or _is_lock_conflict(error):
                raise ConcurrentWriteError("a concurrent transaction wrote the same data") from error
            raise
        self.records.committed()  # the versions it wrote are current now: into the record cache
        statistics_watch(self._engine).after_commit()  # a young database's first statistics

    def rollback(self) -> None:
        if self._session is not None:
            self.outbox.discard()
            self._pending.discard()
            self.records.discard_written()
            self._session.rollback()


class UnitSession:
    """What the repositories of one unit of work share: its database connection, opened on
    first use, and an ORM Session on that connection, made only when a repository asks for the
    ORM (the coverage repository, an unbatched outbox). The write path itself - records read,
    resources' state read, the batched INSERT - runs on the connection alone: an ORM Session's
    begin, commit and close cost more than the rest of a small transaction's bookkeeping
    (docs/decisions/0011, item 21).

    Opening the connection watches it for the unit of work's pending INSERTs
    (service/store/write_behind.py) until commit or rollback; on PostgreSQL it is in autocommit
    mode with a lazy BEGIN, on SQLite a writing unit begins with BEGIN IMMEDIATE."""

    def __init__(self, engine: Engine, pending: PendingInserts, *, write: bool) -> None:
        self._engine = engine
        self._pending = pending
        self._write = write
        self._connection: Connection | None = None
        self._watch: dict | None = None
        self._orm: Session | None = None

    def connection(self) -> Connection:
        connection = self._connection
        if connection is None or connection.closed:
            connection = self._connection = _bind_for(self._engine).connect()
            postgres = connection.dialect.name == "postgresql"
            if not postgres and self._write:
                connection.execution_options(sqlite_begin="immediate")
            connection.begin()  # SQLite: BEGIN [IMMEDIATE] (service/store/db.py); PostgreSQL: lazy
            self._watch = attach(connection, self._pending, lazy_begin=postgres)
        return connection

    @property
    def orm(self) -> Session:
        """An ORM Session joined to the unit's transaction (it flushes into it, never commits
        it; a failed flush rolls it back)."""
        if self._orm is None:
            self._orm = Session(bind=self.connection(), join_transaction_mode="rollback_only",
                                expire_on_commit=False, autoflush=True)
        return self._orm

    def execute(self, statement: Any, params: Any = None) -> Any:
        """A Core statement in the unit's transaction, after the ORM's pending changes."""
        self.flush()
        return self.connection().execute(statement, params)

    def flush(self) -> None:
        if self._orm is not None:
            self._orm.flush()

    def add(self, instance: Any) -> None:
        self.orm.add(instance)

    def get(self, entity: Any, ident: Any) -> Any:
        return self.orm.get(entity, ident)

    def exec(self, statement: Any) -> Any:
        return self.orm.exec(statement)

    def commit(self) -> None:
        """ORM changes, then every queued INSERT (one statement: on PostgreSQL, when nothing else
        was written, it runs on its own, atomic by itself, and COMMIT is not even sent), then
        COMMIT; the connection is released, as an ORM Session releases it at commit."""
        if self._connection is None:
            return
        self.flush()
        self._unwatch()
        self._pending.flush(self._connection)
        self._connection.commit()
        self.close()  # the connection goes back to the pool; a later use begins anew, watched again

    def rollback(self) -> None:
        """Everything since the last commit is gone; a later use begins anew."""
        self.close()

    def close(self) -> None:
        self._unwatch()
        try:
            if self._orm is not None:
                self._orm.close()
        finally:
            if self._connection is not None:
                self._connection.close()  # rolls back what was not committed
                self._connection = None

    def _unwatch(self) -> None:
        if self._watch is not None:
            detach(self._watch, self._pending)
            self._watch = None


def _bind_for(engine: Engine) -> Engine:
    """What a unit of work connects with: on PostgreSQL the engine in autocommit mode (made once,
    kept on the engine), its transaction begun on the first write (lazy BEGIN,
    service/store/write_behind.py)."""
    if engine.dialect.name != "postgresql":
        return engine
    return engine_scoped(engine, "_service_autocommit", lambda: engine.execution_options(isolation_level="AUTOCOMMIT"))


def _is_lock_conflict(exc: BaseException | None) -> bool:
    if not isinstance(exc, OperationalError):
        return False
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return code in {"40001", "40P01"}  # serialization failure, deadlock


def uow_factory(engine: Engine, clock: Clock = utc_now) -> Callable[[], SqlUnitOfWork]:
    """A factory of fresh units of work on `engine` (one per transaction)."""
    return lambda: SqlUnitOfWork(engine, clock)
