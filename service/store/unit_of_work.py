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

from sqlalchemy import Engine, event
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import Session

from .coverage_repository import CoverageRepository
from .fhir_search import FhirSearchRepository
from .outbox import Outbox
from .repository import FhirResourceRepository, IdempotencyRepository, RecordRepository
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
        self._session: Session | None = None

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
        self._session = _WriteBehindSession(_bind_for(self._engine), expire_on_commit=False, autoflush=True)
        self._session.info[_PENDING] = self._pending
        if self._engine.dialect.name == "sqlite" and self._write:
            self._session.connection(execution_options={"sqlite_begin": "immediate"})
        self.records = RecordRepository(self._session, self._transaction_now, self._pending)
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
        _unwatch(session)
        try:
            session.rollback()  # no-op after commit; discards anything uncommitted
        finally:
            session.close()
        if isinstance(exc, IntegrityError) or _is_lock_conflict(exc):
            raise ConcurrentWriteError("a concurrent transaction wrote the same data") from exc

    def commit(self) -> None:
        if self._session is None:
            raise RuntimeError("unit of work is not open")
        try:
            self.outbox.flush()  # the transaction's outbox rows join the write-behind
            connection = self._session.connection()
            _unwatch(self._session)
            # every INSERT of the transaction, one statement: on PostgreSQL, when nothing else
            # was written, it runs on its own (atomic by itself) and commit sends nothing
            self._pending.flush(connection)
            self._session.commit()
        except IntegrityError as error:
            raise ConcurrentWriteError("a concurrent transaction wrote the same data") from error

    def rollback(self) -> None:
        if self._session is not None:
            self.outbox.discard()
            self._pending.discard()
            _unwatch(self._session)
            self._session.rollback()


_PENDING, _WATCH = "pending_inserts", "pending_watch"


class _WriteBehindSession(Session):
    """The unit of work's Session: each transaction it begins watches its connection for the
    unit of work's pending INSERTs (service/store/write_behind.py) until commit or rollback,
    so the pooled connection never carries them to another transaction."""


@event.listens_for(_WriteBehindSession, "after_begin")
def _watch(session: Session, _transaction: object, connection: Any) -> None:
    lazy = connection.dialect.name == "postgresql"
    session.info[_WATCH] = attach(connection, session.info[_PENDING], lazy_begin=lazy)


def _bind_for(engine: Engine) -> Engine:
    """What a unit of work's Session is bound to: on PostgreSQL the engine in autocommit mode
    (made once, kept on the engine), its transaction begun on the first write (lazy BEGIN,
    service/store/write_behind.py)."""
    if engine.dialect.name != "postgresql":
        return engine
    bind = engine.__dict__.get("_service_autocommit")
    if bind is None:
        bind = engine.__dict__["_service_autocommit"] = engine.execution_options(isolation_level="AUTOCOMMIT")
    return bind


def _unwatch(session: Session) -> None:
    handle = session.info.pop(_WATCH, None)
    if handle is not None:
        detach(handle, session.info[_PENDING])


def _is_lock_conflict(exc: BaseException | None) -> bool:
    if not isinstance(exc, OperationalError):
        return False
    code = getattr(getattr(exc, "orig", None), "sqlstate", None)
    return code in {"40001", "40P01"}  # serialization failure, deadlock


def uow_factory(engine: Engine, clock: Clock = utc_now) -> Callable[[], SqlUnitOfWork]:
    """A factory of fresh units of work on `engine` (one per transaction)."""
    return lambda: SqlUnitOfWork(engine, clock)
