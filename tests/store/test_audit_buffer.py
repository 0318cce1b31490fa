"""Group-committed audit events (service/store/audit_buffer.py), on SQLite and PostgreSQL:
a read sees every event submitted before it, events are written in submission order and
timestamped when submitted, a database outage loses none of them, a full buffer refuses
(the caller then writes synchronously) and closing writes what is pending."""

from __future__ import annotations

import datetime as dt
import threading

import sqlalchemy as sa

from service.store.audit import AuditQuery, AuditRecord
from service.store.audit_buffer import BufferedAuditLog

T0 = dt.datetime(2026, 11, 29, 12, 0, tzinfo=dt.timezone.utc)


class Ticks:
    """A clock that advances one second per call."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> dt.datetime:
        self.calls += 1
        return T0 + dt.timedelta(seconds=self.calls)


def record(n: int) -> AuditRecord:
    return AuditRecord(action="R", outcome="0", subtype="read", clinic_id="riverbend", patient_ids=[f"p{n}"],
                       id=f"event-{n:04d}")


def test_reads_see_every_submitted_event_in_submission_order(engine: sa.Engine) -> None:
    log = BufferedAuditLog(engine, Ticks(), max_delay=5.0)  # the writer would wait 5 s on its own
    try:
        for n in range(30):
            assert log.submit(record(n))
        rows, more = log.search(AuditQuery(clinic_id="riverbend", limit=100))  # flushes first
        assert not more and len(rows) == 30
        newest_first = [event_id for _, event_id, _ in rows]
        assert newest_first == [f"event-{n:04d}" for n in reversed(range(30))]
        assert rows[-1][0] == T0 + dt.timedelta(seconds=1)  # stamped at submit, not at write
        assert log.count(AuditQuery(patient="p7")) == 1
        assert log.read("event-0007") is not None
    finally:
        log.close()


def test_an_outage_loses_nothing_and_the_events_follow_once_the_database_is_back(engine: sa.Engine) -> None:
    log = BufferedAuditLog(engine, Ticks(), max_delay=0.01)
    broken = threading.Event()
    broken.set()
    written_through = log.append

    def flaky_append(records: list[AuditRecord]) -> None:
        if broken.is_set():
            raise sa.exc.OperationalError("INSERT", {}, Exception("connection refused"))
        written_through(records)

    log.append = flaky_append  # type: ignore[method-assign]
    try:
        for n in range(5):
            log.submit(record(n))
        assert not log.flush(timeout=0.3)  # cannot be written while the database is down
        broken.clear()
        assert log.flush(timeout=30)
        assert log.count(AuditQuery()) == 5
    finally:
        log.close()


def test_a_full_buffer_refuses_and_close_writes_what_is_pending(engine: sa.Engine) -> None:
    log = BufferedAuditLog(engine, Ticks(), max_delay=5.0, batch=1000, limit=3)
    for n in range(3):
        assert log.submit(record(n))
    assert not log.submit(record(3))  # the caller writes this one itself (AuditLog.append)
    log.close()
    assert not log.submit(record(4))  # closed: synchronous writes from now on
    assert BufferedAuditLog(engine).count(AuditQuery()) == 3
