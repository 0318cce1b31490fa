"""The record cache (service/store/record_cache.py) and the writes that rely on it
(`RecordRepository.read_for_write`): what it keeps, and - on PostgreSQL, where a record's first
write takes its references from it - that every way the cache can be wrong (another process
updated a referenced record, moved an enrollment to another patient, or wrote the record
itself) costs one refused attempt and then gives what a write that read everything gives."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest
import sqlalchemy as sa
from alembic import command

from service.store import SqlUnitOfWork
from service.store.db import make_engine
from service.store.migrations import upgrade_to_head
from service.store.record_cache import RecordCache, record_cache
from service.store.repository import StoredRecord
from service.store.unit_of_work import ConcurrentWriteError
from service.usecases import MissingReference, WriteStatus, put_record
from tests import factories as f
from tests.store.support import table_contents
from tests.store.test_batched_writes import count_statements, seed

T0 = dt.datetime(2026, 3, 2, tzinfo=dt.timezone.utc)


def stored(key: str, version: int = 1, kind: str = "patients") -> StoredRecord:
    return StoredRecord(kind, "c-1", key, None, {"id": key, "v": version}, version, f"h{version}", T0, T0)


# --------------------------------------------------------------------------- the cache itself


def test_the_cache_answers_only_when_it_holds_every_key_and_keeps_the_newest_version() -> None:
    cache = RecordCache(size=10)
    cache.put([stored("a"), stored("b", 2)])
    assert cache.all_of([("patients", "c-1", "a"), ("patients", "c-1", "b")]) == {
        ("patients", "c-1", "a"): stored("a"), ("patients", "c-1", "b"): stored("b", 2)
    }
    assert cache.all_of([("patients", "c-1", "a"), ("patients", "c-1", "zz")]) is None
    assert cache.all_of([]) == {}
    cache.put([stored("b", 1)])  # an older version read late does not replace the newer one
    cache.put([stored("a", 3)])
    found = cache.all_of([("patients", "c-1", "a"), ("patients", "c-1", "b")])
    assert found is not None
    assert [r.version for r in found.values()] == [3, 2]
    assert cache.knows(("patients", "c-1", "a")) and not cache.knows(("patients", "c-1", "zz"))


def test_the_cache_is_bounded_and_lets_the_least_recently_used_go_first() -> None:
    cache = RecordCache(size=3)
    cache.put([stored("a"), stored("b"), stored("c")])
    assert cache.all_of([("patients", "c-1", "a")]) is not None  # a is used again
    cache.put([stored("d")])
    assert len(cache) == 3
    assert not cache.knows(("patients", "c-1", "b"))
    assert all(cache.knows(("patients", "c-1", k)) for k in "acd")


def test_only_committed_versions_enter_the_cache(engine) -> None:
    cache = record_cache(engine)
    with SqlUnitOfWork(engine) as uow:
        uow.records.save("patients", "c-1", "rolled-back", patient_key="rolled-back", data={"id": "rolled-back"})
        uow.rollback()
    with pytest.raises(RuntimeError):
        with SqlUnitOfWork(engine) as uow:
            uow.records.save("patients", "c-1", "failed", patient_key="failed", data={"id": "failed"})
            raise RuntimeError("the use case failed before its commit")
    assert not cache.knows(("patients", "c-1", "rolled-back")) and not cache.knows(("patients", "c-1", "failed"))
    with SqlUnitOfWork(engine) as uow:
        uow.records.save("patients", "c-1", "kept", patient_key="kept", data={"id": "kept"})
        uow.commit()
    found = cache.all_of([("patients", "c-1", "kept")])
    assert found is not None and found[("patients", "c-1", "kept")].version == 1


def test_sqlite_always_reads_the_records(engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite")
    uow = lambda: SqlUnitOfWork(engine)  # noqa: E731
    seed(uow)
    with SqlUnitOfWork(engine) as unit:
        found, presumed = unit.records.read_for_write([("clinics", f.CLINIC, f.CLINIC)], ("vitals", f.CLINIC, "new"))
    assert not presumed and ("clinics", f.CLINIC, f.CLINIC) in found


# --------------------------------------------------------------------------- wrong presumptions (PostgreSQL)


@pytest.fixture
def pg_engine(engine) -> sa.Engine:
    if engine.dialect.name != "postgresql":
        pytest.skip("the records read is skipped on PostgreSQL only")
    return engine


@pytest.fixture
def other_process(pg_engine):  # type: ignore[no-untyped-def]
    """A second engine on the same database: another server process, with its own cache."""
    other = make_engine(pg_engine.url.render_as_string(hide_password=False))
    yield other
    other.dispose()


def test_a_new_record_with_cached_references_is_one_statement(pg_engine) -> None:
    uow = lambda: SqlUnitOfWork(pg_engine)  # noqa: E731
    seed(uow)
    results: list = []
    assert count_statements(pg_engine, lambda: results.append(put_record(uow(), "vitals", f.vitals(id="v-new")))) == 1
    assert results[0].status is WriteStatus.CREATED and results[0].version == 1
    # the record is known now: its update reads it (and its resources) as before
    updated = put_record(uow(), "vitals", f.vitals(id="v-new", heart_rate_bpm=99))
    assert updated.status is WriteStatus.UPDATED and updated.version == 2


def test_a_clinic_updated_by_another_process_is_read_again_and_mapped_as_it_is_now(pg_engine, other_process) -> None:
    uow = lambda: SqlUnitOfWork(pg_engine)  # noqa: E731
    seed(uow)  # this process's cache holds the clinic at version 1
    put_record(SqlUnitOfWork(other_process), "clinics", f.clinic(identifier_system="https://renamed.example.org/ids"))
    results: list = []
    session = f.FACTORIES["administration-sessions"](id="sess-after")
    statements = count_statements(pg_engine, lambda: results.append(put_record(uow(), "administration-sessions", session)))
    assert statements == 4  # the presumed INSERT (refused), then records read, state read, INSERT
    assert results[0].status is WriteStatus.CREATED
    systems = {i["system"] for r in _resources(pg_engine, "administration-sessions", "sess-after") for i in r.get("identifier", [])}
    assert systems and all(s.startswith("https://renamed.example.org/ids") for s in systems)
    found = record_cache(pg_engine).all_of([("clinics", f.CLINIC, f.CLINIC)])
    assert found is not None and found[("clinics", f.CLINIC, f.CLINIC)].version == 2


def test_an_enrollment_moved_to_another_patient_by_another_process_is_refused(pg_engine, other_process) -> None:
    uow = lambda: SqlUnitOfWork(pg_engine)  # noqa: E731
    seed(uow)
    put_record(uow(), "enrollments", f.enrollment())  # cached at its version
    put_record(SqlUnitOfWork(other_process), "patients", f.patient(id="pt-other", mrn="MRN-OTHER"))
    put_record(SqlUnitOfWork(other_process), "enrollments", f.enrollment(patient_id="pt-other"))
    before = table_contents(pg_engine)
    with pytest.raises(MissingReference, match="enrollment_id: enrollments record 'enr-1' belongs to another patient"):
        put_record(uow(), "administration-sessions", f.FACTORIES["administration-sessions"](id="sess-moved"))
    assert table_contents(pg_engine) == before


def test_a_record_another_process_wrote_is_updated_not_duplicated(pg_engine, other_process) -> None:
    uow = lambda: SqlUnitOfWork(pg_engine)  # noqa: E731
    seed(uow)
    put_record(SqlUnitOfWork(other_process), "vitals", f.vitals(id="v-elsewhere"))
    changed = put_record(uow(), "vitals", f.vitals(id="v-elsewhere", heart_rate_bpm=61))
    assert changed.status is WriteStatus.UPDATED and changed.version == 2
    same = put_record(SqlUnitOfWork(other_process), "vitals", f.vitals(id="v-elsewhere", heart_rate_bpm=61))
    assert same.status is WriteStatus.UNCHANGED and same.version == 2
    with pg_engine.connect() as connection:
        versions = connection.execute(sa.text("SELECT version FROM record_version WHERE key = 'v-elsewhere' ORDER BY 1"))
        assert [v for (v,) in versions] == [1, 2]


def test_migration_0012_adds_the_record_guard_function_and_drops_it(pg_engine) -> None:
    from service.store.migrations import alembic_config

    def run(action, revision: str) -> None:  # type: ignore[no-untyped-def]
        cfg = alembic_config(pg_engine)
        with pg_engine.begin() as connection:
            cfg.attributes["connection"] = connection
            action(cfg, revision)

    def exists() -> bool:
        with pg_engine.connect() as connection:
            return bool(connection.execute(sa.text("SELECT count(*) FROM pg_proc WHERE proname = 'record_changed'")).scalar())

    assert exists()
    run(command.downgrade, "0011")
    assert not exists()
    upgrade_to_head(pg_engine)
    assert exists()


def _resources(engine: sa.Engine, kind: str, key: str) -> list[dict]:
    with SqlUnitOfWork(engine, write=False) as uow:
        return [orjson.loads(r.json) for r in uow.resources.by_source(kind, f.CLINIC, key) if r.json]


def test_required_versions_are_checked_before_any_other_statement_even_without_rows_to_insert(pg_engine) -> None:
    """A write that relied on cached records and then reads (a kind whose resources' state must
    be read) sends the version check first, on its own if nothing is queued to insert yet."""
    uow = lambda: SqlUnitOfWork(pg_engine)  # noqa: E731
    seed(uow)
    clinic = ("clinics", f.CLINIC, f.CLINIC)
    with SqlUnitOfWork(pg_engine) as unit:
        found, presumed = unit.records.read_for_write([clinic], ("vitals", f.CLINIC, "v-check"))
        assert presumed
        assert unit.records.get_many([("patients", f.CLINIC, f.PATIENT)])  # the check went out first, and passed
    put_record(uow(), "clinics", f.clinic(name="Renamed"))  # version 2; this cache knows it
    stale = found[clinic]
    with pytest.raises(ConcurrentWriteError) as raised:  # what put_record retries on
        with SqlUnitOfWork(pg_engine) as unit:
            unit._pending.require([(stale.kind, stale.clinic_id, stale.key, stale.version)])
            unit.records.get_many([("patients", f.CLINIC, f.PATIENT)])
    assert "record clinics/clinic-1/clinic-1 changed since it was read" in str(raised.value.__cause__)
