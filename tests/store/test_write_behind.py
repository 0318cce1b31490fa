"""The unit of work's write-behind (service/store/write_behind.py) on every backend: queued
INSERTs are visible to every later statement of their transaction (reads, updates, ORM
flushes), leave with a rollback, never reach another transaction through the pooled
connection, and keep their order (outbox sequence)."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa

from service.store import SqlUnitOfWork
from service.store.repository import ResourceInput
from service.store.write_behind import PendingInserts, _merged

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
        # a plain statement on a pooled connection after the units of work finds nothing queued
        assert not any(isinstance(v, PendingInserts) for v in connection.info.values())


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
