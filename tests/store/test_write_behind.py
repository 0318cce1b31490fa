"""The unit of work's write-behind (service/store/write_behind.py) on every backend: queued
INSERTs are visible to every later statement of their transaction (reads, updates, ORM
flushes), leave with a rollback, never reach another transaction through the pooled
connection, and keep their order (outbox sequence). On PostgreSQL, the lazy BEGIN: a write
that is one statement at commit sends no BEGIN, one that is more runs in a transaction (an
injected failure after an UPDATE leaves the row as it was)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from service.store import SqlUnitOfWork
from service.store.repository import ResourceInput
from service.store import write_behind
from service.store.write_behind import WATCH_KEY, _merged, is_plain_read

NOW = dt.datetime(2026, 3, 2, 14, 0, 0, 123000, tzinfo=dt.timezone.utc)


def clock() -> dt.datetime:
    return NOW


def observation(rid: str) -> dict:
    return {"resourceType": "Observation", "id": rid, "status": "final", "subject": {"reference": "Patient/p-1"},
            "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}}


def test_a_read_in_the_same_transaction_sees_queued_rows(engine) -> None:
    with SqlUnitOfWork(engine, clock) as uow:
        uow.records.save("patients", "c-1", "p-1", patient_key="p-1", data={"id": "p-1"})
        uow.resources.save_many([ResourceInput(observation("o-1"), "c-1")])
        assert uow.records.get("patients", "c-1", "p-1") is not None  # sent before the SELECT
        assert uow.resources.read("Observation", "o-1") is not None
        assert uow.resources.tokens("Observation", "o-1")  # tokens went with it
        uow.commit()
    with SqlUnitOfWork(engine, clock, write=False) as uow:
        assert uow.records.get("patients", "c-1", "p-1").version == 1


def test_an_update_after_a_queued_insert_applies_to_the_inserted_row(engine) -> None:
    with SqlUnitOfWork(engine, clock) as uow:
        uow.resources.save_many([ResourceInput(observation("o-2"), "c-1")])
        changed = {**observation("o-2"), "status": "amended"}
        write = uow.resources.save_many([ResourceInput(changed, "c-1")]).writes[0]
        assert write.version_id == 2 and write.changed
        uow.commit()
    with SqlUnitOfWork(engine, clock, write=False) as uow:
        assert [s.version_id for s in uow.resources.history("Observation", "o-2")] == [2, 1]


def test_rolled_back_rows_are_gone_and_do_not_follow_the_pooled_connection(engine) -> None:
    with SqlUnitOfWork(engine, clock) as uow:
        uow.records.save("patients", "c-1", "p-gone", patient_key="p-gone", data={"id": "p-gone"})
        # leave without commit: rolled back, the queue discarded
    with SqlUnitOfWork(engine, clock) as uow:  # likely the same pooled connection
        uow.records.save("patients", "c-1", "p-kept", patient_key="p-kept", data={"id": "p-kept"})
        uow.commit()
    with engine.connect() as connection:
        keys = {r[0] for r in connection.execute(sa.text("SELECT key FROM record WHERE clinic_id = 'c-1'"))}
        assert "p-gone" not in keys and "p-kept" in keys
        # a pooled connection carries no queue once its units of work are done
        assert WATCH_KEY not in connection.info


def test_outbox_rows_queued_with_resources_keep_their_order(engine) -> None:
    with SqlUnitOfWork(engine, clock) as uow:
        batch = uow.resources.save_many([ResourceInput(observation(f"o-{i}"), "c-1") for i in (7, 5, 6)])
        for write in batch.writes:
            uow.outbox.append(write)
        uow.commit()
    with SqlUnitOfWork(engine, clock, write=False) as uow:
        assert [e.resource_id for e in uow.outbox.after(0)][-3:] == ["o-7", "o-5", "o-6"]


def test_batches_of_one_table_are_merged_in_order() -> None:
    metadata = sa.MetaData()
    a = sa.Table("a", metadata, sa.Column("x", sa.Integer))
    b = sa.Table("b", metadata, sa.Column("y", sa.Integer))
    merged = _merged([(a, [{"x": 1}]), (b, [{"y": 1}]), (a, [{"x": 2}, {"x": 3}])])
    assert [(t.name, [list(r.values())[0] for r in rows]) for t, rows in merged] == [("a", [1, 2, 3]), ("b", [1])]


def _begins(monkeypatch) -> list[bool]:
    """Records, per `begin_if_idle` call, whether a BEGIN went out (the server was idle)."""
    sent: list[bool] = []
    real = write_behind.begin_if_idle

    def spy(connection: sa.Connection) -> None:
        driver = connection.connection.driver_connection
        sent.append(driver.info.transaction_status == driver.info.transaction_status.IDLE)
        real(connection)

    monkeypatch.setattr(write_behind, "begin_if_idle", spy)
    return sent


def test_postgresql_a_single_statement_write_sends_no_begin_and_more_runs_in_one_transaction(engine, monkeypatch) -> None:
    if engine.dialect.name != "postgresql":
        return  # SQLite takes its write lock with BEGIN IMMEDIATE up front
    sent = _begins(monkeypatch)
    with SqlUnitOfWork(engine, clock) as uow:
        uow.records.get("patients", "c-2", "p-9")  # reads: no transaction needed
        uow.records.get_many([("clinics", "c-2", "c-2"), ("patients", "c-2", "p-9")])
        uow.resources.save_many([ResourceInput(observation("o-9"), "c-2")])  # reads state, queues
        uow.records.save("patients", "c-2", "p-9", patient_key="p-9", data={"id": "p-9"}, current=None)
        uow.commit()
    assert not any(sent)  # everything went out as one INSERT, atomic on its own
    with SqlUnitOfWork(engine, clock) as uow:
        uow.records.save("patients", "c-2", "p-8", patient_key="p-8", data={"id": "p-8"}, current=None)
        assert uow.records.get("patients", "c-2", "p-8") is not None  # the read sends the queue first...
        uow.resources.save_many([ResourceInput(observation("o-8"), "c-2")])
        uow.commit()
    assert sent.count(True) == 1  # ...inside a transaction, which the later INSERT joins
    with SqlUnitOfWork(engine, clock) as uow:
        current = uow.records.get("patients", "c-2", "p-9")
        uow.records.save("patients", "c-2", "p-9", patient_key="p-9", data={"id": "p-9", "v": 2}, current=current)
        uow.resources.save_many([ResourceInput(observation("o-10"), "c-2")])
        uow.commit()
    assert sent.count(True) == 2  # the UPDATE began the transaction the INSERT joined
    with SqlUnitOfWork(engine, clock, write=False) as uow:
        assert uow.records.get("patients", "c-2", "p-9").version == 2
        assert uow.resources.read("Observation", "o-10") is not None


def test_plain_reads_are_told_from_writes() -> None:
    table = sa.table("t", sa.column("a"))
    assert is_plain_read(sa.select(table.c.a)) and is_plain_read("SELECT 1") and is_plain_read(sa.text(" select a from t"))
    assert is_plain_read("(SELECT a FROM t WHERE k = 1) UNION ALL (SELECT a FROM t WHERE k = 2)")
    assert not is_plain_read(sa.select(table.c.a).with_for_update())
    assert not is_plain_read(sa.text("SELECT a FROM t FOR UPDATE SKIP LOCKED"))
    assert not is_plain_read(sa.insert(table)) and not is_plain_read(sa.update(table)) and not is_plain_read("WITH w AS (INSERT ...) SELECT 1")


def test_postgresql_statements_sent_to_the_driver_keep_the_execution_path_guarantees(engine) -> None:
    """`repository.driver_execute` (the write path's reads and INSERT on psycopg directly):
    a queued INSERT still goes out first, driver errors come back as SQLAlchemy's exceptions
    (an IntegrityError stays a retry for the unit of work), and statement listeners see it."""
    if engine.dialect.name != "postgresql":
        return  # SQLite statements go through SQLAlchemy
    from service.store.repository import driver_execute
    from service.store.unit_of_work import ConcurrentWriteError
    import pytest

    seen: list[str] = []
    listener = lambda conn, cursor, statement, *rest: seen.append(statement)  # noqa: E731
    sa.event.listen(engine, "before_cursor_execute", listener)
    try:
        with SqlUnitOfWork(engine, clock) as uow:
            uow.records.save("patients", "c-3", "p-1", patient_key="p-1", data={"id": "p-1"}, current=None)
            connection = uow.records._connection()
            rows = driver_execute(connection, "SELECT key FROM record WHERE clinic_id = %(c)s", {"c": "c-3"}, fetch=True)
            assert rows == [("p-1",)]  # the queued INSERT went out before the read
            with pytest.raises(sa.exc.ProgrammingError):
                driver_execute(connection, "SELECT no_such_column FROM record", {})
    finally:
        sa.event.remove(engine, "before_cursor_execute", listener)
    assert any("SELECT key FROM record" in s for s in seen)
    with SqlUnitOfWork(engine, clock, write=False) as uow:
        assert uow.records.get("patients", "c-3", "p-1") is None  # left without commit: rolled back
    with SqlUnitOfWork(engine, clock) as uow:
        uow.records.save("patients", "c-3", "p-2", patient_key="p-2", data={"id": "p-2"}, current=None)
        uow.commit()
    with pytest.raises(ConcurrentWriteError):
        with SqlUnitOfWork(engine, clock) as uow:  # the same key again: a duplicate in the one INSERT
            uow.records.save("patients", "c-3", "p-2", patient_key="p-2", data={"id": "p-2"}, current=None)
            uow.commit()


def test_work_after_a_commit_or_rollback_in_the_same_unit_is_a_new_watched_transaction(engine, monkeypatch) -> None:
    """A unit of work committed (or rolled back) once and used again: the new rows are queued
    and seen by the reads that follow, and (PostgreSQL) a write of more than one statement
    begins a transaction again."""
    sent = _begins(monkeypatch)
    with SqlUnitOfWork(engine, clock) as uow:
        uow.records.save("patients", "c-3", "p-1", patient_key="p-1", data={"id": "p-1"}, current=None)
        uow.commit()
        uow.records.save("patients", "c-3", "p-2", patient_key="p-2", data={"id": "p-2"}, current=None)
        assert uow.records.get("patients", "c-3", "p-2") is not None  # the queued row went out first
        uow.resources.save_many([ResourceInput(observation("o-31"), "c-3")])
        uow.commit()
    if engine.dialect.name == "postgresql":
        assert sent.count(True) == 1  # the read after the queued INSERT began the second transaction
    with SqlUnitOfWork(engine, clock) as uow:  # and after a rollback
        uow.records.save("patients", "c-3", "p-3", patient_key="p-3", data={"id": "p-3"}, current=None)
        assert uow.records.get("patients", "c-3", "p-3") is not None
        uow.rollback()
        assert uow.records.get("patients", "c-3", "p-3") is None
        uow.records.save("patients", "c-3", "p-4", patient_key="p-4", data={"id": "p-4"}, current=None)
        uow.commit()
    with SqlUnitOfWork(engine, clock, write=False) as uow:
        assert uow.records.get("patients", "c-3", "p-1") is not None
        assert uow.records.get("patients", "c-3", "p-2") is not None
        assert uow.resources.read("Observation", "o-31") is not None
        assert uow.records.get("patients", "c-3", "p-3") is None
        assert uow.records.get("patients", "c-3", "p-4") is not None
