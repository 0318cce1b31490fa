"""A young PostgreSQL database gets its first planner statistics from the write path
(service/store/statistics.py): every CHECK_EVERY commits, the write tables that hold rows and
were never analysed are analysed (empty ones are left alone). After that, the resources'
state read plans primary-key probes instead of scanning `fhir_resource`. Checking stops once
every write table has statistics. SQLite has nothing to do."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from service.store import SqlUnitOfWork
from service.store import statistics
from service.store.repository import _BATCH_STATE_WITH_SOURCE_PG, ResourceInput
from tests.store.support import generic_plan_scans

STATE_PARAMS = {"types": ["Observation"], "ids": ["o-1"], "source_kind": "vitals", "source_clinic_id": "c-1", "source_key": "v-1"}


def observation(number: int) -> dict:
    return {
        "resourceType": "Observation", "id": f"o-{number}", "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": "Patient/p-1"}, "effectiveDateTime": "2026-03-02T09:40:00-05:00",
    }


def write(engine: sa.Engine, number: int) -> None:
    with SqlUnitOfWork(engine) as uow:
        batch = uow.resources.save_many([ResourceInput(observation(number), "c-1", ("vitals", "c-1", f"v-{number}"))])
        for written in batch.writes:
            uow.outbox.append(written)
        uow.records.save("vitals", "c-1", f"v-{number}", patient_key="p-1", data={"id": f"v-{number}"}, current=None)
        uow.commit()


def analysed(engine: sa.Engine) -> set[str]:
    with engine.connect() as connection:
        return set(connection.execute(sa.text(
            "SELECT DISTINCT tablename FROM pg_stats WHERE schemaname = current_schema() AND tablename = ANY(:t)"
        ), {"t": list(statistics.WRITE_TABLES)}).scalars())


def resource_scans(engine: sa.Engine) -> set[tuple[str, str | None]]:
    """How the resources' state read's generic plan reads `fhir_resource` by key (the probe by
    source has its own index either way)."""
    with engine.connect() as connection:
        return {(kind, index) for table, kind, index in generic_plan_scans(connection, _BATCH_STATE_WITH_SOURCE_PG, STATE_PARAMS)
                if table == "fhir_resource" and index != "ix_fhir_resource_source"}


def test_a_young_database_is_analysed_after_its_first_writes_and_then_plans_key_probes(engine, monkeypatch) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL planner statistics")
    monkeypatch.setattr(statistics, "CHECK_EVERY", 5)
    assert resource_scans(engine) == {("Seq Scan", None)}  # a new database: a scan, as measured
    with engine.begin() as connection:  # a first import's worth of resources, bar the last writes
        connection.execute(sa.text(
            "INSERT INTO fhir_resource (resource_type, id, version_id, last_updated, json, content_hash) "
            "SELECT 'Observation', 'bulk-' || i, 1, now(), '{}', 'h' FROM generate_series(1, 3000) i"
        ))
    for number in range(4):
        write(engine, number)
    assert analysed(engine) == set()  # not yet: the check runs every 5 commits
    write(engine, 4)
    # the tables the writes filled have statistics; the empty history was left alone
    assert analysed(engine) == {"record", "record_version", "fhir_resource", "fhir_search_token", "outbox"}
    assert resource_scans(engine) == {("Index Scan", "fhir_resource_pkey")}
    watch = statistics.statistics_watch(engine)
    assert not watch.done  # fhir_resource_history: no rows, so no statistics yet
    with engine.begin() as connection:  # a resource was updated once, and autovacuum came by
        connection.exec_driver_sql(
            "INSERT INTO fhir_resource_history (resource_type, id, version_id, last_updated, json, deleted) "
            "VALUES ('Observation', 'bulk-1', 1, now(), '{}', false)"
        )
        connection.exec_driver_sql("ANALYZE fhir_resource_history")
    for number in range(5, 10):
        write(engine, number)
    assert watch.done  # every write table has statistics: no more checks
    for number in range(10, 15):
        write(engine, number)  # and writes go on


def test_sqlite_has_nothing_to_do(engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite")
    assert statistics.statistics_watch(engine).done
    write(engine, 1)


def test_a_failing_check_never_fails_the_write(engine, monkeypatch) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL planner statistics")
    monkeypatch.setattr(statistics, "CHECK_EVERY", 1)
    monkeypatch.setattr(statistics, "_WITHOUT_STATISTICS", sa.text("SELECT no_such_column FROM pg_stats"))
    write(engine, 1)
    with SqlUnitOfWork(engine, write=False) as uow:
        assert uow.resources.read("Observation", "o-1") is not None
    assert not statistics.statistics_watch(engine).done
