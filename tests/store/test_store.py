"""Store behaviour on every backend: migrations, versioning, idempotent writes, outbox rows,
search columns/tokens, deletions, and rollback of a unit of work that fails midway."""

from __future__ import annotations

import datetime as dt
import functools

import orjson
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from service.store import SqlUnitOfWork, make_engine, upgrade_to_head
from service.store.migrations import current_revision, head_revision
from service.store.tables import metadata
from tests.store.support import generic_plan_scans, table_counts

EST = dt.timezone(dt.timedelta(hours=-5))


class FrozenClock:
    """A non-UTC clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = dt.datetime(2026, 3, 2, 9, 0, 0, 123456, tzinfo=EST)

    def __call__(self) -> dt.datetime:
        return self.now

    def tick(self, seconds: int = 60) -> None:
        self.now += dt.timedelta(seconds=seconds)


def observation(value: int = 72, **extra: object) -> dict:
    return {
        "resourceType": "Observation",
        "id": "obs-1",
        "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-heart-rate"]},
        "status": "final",
        "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "vital-signs"}]}],
        "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]},
        "subject": {"reference": "Patient/p-1"},
        "effectiveDateTime": "2026-03-02T09:40:00-05:00",
        "valueQuantity": {"value": value, "unit": "/min"},
        **extra,
    }


def test_migrations_upgrade_an_empty_database_to_the_table_layout(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        assert sa.inspect(engine).get_table_names() == []
        upgrade_to_head(engine)
        upgrade_to_head(engine)  # idempotent
        assert current_revision(engine) == head_revision()
        names = set(sa.inspect(engine).get_table_names())
        assert {t.name for t in metadata.sorted_tables} <= names
        with engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), metadata)
        assert diff == [], "migrations and tables.py disagree"
    finally:
        engine.dispose()


def _migrate(engine: sa.Engine, action, revision: str) -> None:  # type: ignore[no-untyped-def]
    """Run an Alembic command (`command.upgrade` / `command.downgrade`) to `revision`."""
    from service.store.migrations import alembic_config

    cfg = alembic_config(engine)
    with engine.begin() as connection:
        cfg.attributes["connection"] = connection
        action(cfg, revision)


def test_migration_0010_reorders_the_record_patient_index_and_back(database_url: str) -> None:
    engine = make_engine(database_url)

    def columns() -> list[str]:
        return next(i["column_names"] for i in sa.inspect(engine).get_indexes("record") if i["name"] == "ix_record_patient")

    try:
        _migrate(engine, command.upgrade, "0009")
        assert columns() == ["clinic_id", "patient_key", "kind"]
        _migrate(engine, command.upgrade, "0010")
        assert columns() == ["patient_key", "clinic_id", "kind"]
        _migrate(engine, command.downgrade, "0009")
        assert columns() == ["clinic_id", "patient_key", "kind"]
    finally:
        engine.dispose()


def test_migration_0011_adds_the_version_guard_function_on_postgresql_and_drops_it(database_url: str) -> None:
    engine = make_engine(database_url)

    def guard_exists() -> bool:
        with engine.connect() as connection:
            return bool(connection.execute(sa.text("SELECT count(*) FROM pg_proc WHERE proname = 'fhir_version_conflict'")).scalar())

    try:
        _migrate(engine, command.upgrade, "0011")
        if engine.dialect.name != "postgresql":
            return  # nothing to add: SQLite always reads a batch's state (save_many's presume_new)
        assert guard_exists()
        _migrate(engine, command.downgrade, "0010")
        assert not guard_exists()
        _migrate(engine, command.upgrade, "0011")
        assert guard_exists()
    finally:
        engine.dispose()


def test_migration_0009_moves_status_searches_to_the_column_and_back(database_url: str) -> None:
    """0009 deletes the status tokens an older database holds (the column answers status
    searches); its downgrade writes them again from the column."""
    engine = make_engine(database_url)
    migrate = functools.partial(_migrate, engine)

    def status_tokens() -> list[tuple]:
        with engine.connect() as connection:
            return [tuple(r) for r in connection.execute(sa.text(
                "SELECT resource_id, system, value FROM fhir_search_token WHERE param = 'status' ORDER BY resource_id"))]

    try:
        migrate(command.upgrade, "0008")
        with engine.begin() as connection:
            connection.execute(sa.text(
                "INSERT INTO fhir_resource (resource_type, id, version_id, last_updated, json, content_hash, status) "
                "VALUES ('Observation', 'o-1', 1, :now, :json, 'h', 'final'), ('Patient', 'p-1', 1, :now, :json, 'h', NULL)"
            ), {"now": dt.datetime(2026, 3, 2, tzinfo=dt.timezone.utc), "json": b"{}"})
            connection.execute(sa.text(
                "INSERT INTO fhir_search_token (resource_type, resource_id, param, system, value) "
                "VALUES ('Observation', 'o-1', 'status', '', 'final'), ('Observation', 'o-1', 'code', 'http://loinc.org', '8867-4')"
            ))
        migrate(command.upgrade, "0009")
        assert status_tokens() == []
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT count(*) FROM fhir_search_token")).scalar_one() == 1  # code kept
        migrate(command.downgrade, "0008")
        assert status_tokens() == [("o-1", "", "final")]
    finally:
        engine.dispose()


def test_sqlite_connections_use_wal_and_foreign_keys(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'sub' / 'x.sqlite3'}")
    try:
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 1000
        assert (tmp_path / "sub").is_dir()
    finally:
        engine.dispose()


def test_resource_versions_meta_history_and_idempotent_rewrite(engine) -> None:
    clock = FrozenClock()
    with SqlUnitOfWork(engine, clock) as uow:
        first = uow.resources.save(observation(), clinic_id="c-1", source=("vitals", "c-1", "v-1"))
        uow.outbox.append(first)
        uow.commit()
    assert (first.version_id, first.changed, first.patient_id) == (1, True, "p-1")

    clock.tick()
    with SqlUnitOfWork(engine, clock) as uow:
        same = uow.resources.save(observation(), clinic_id="c-1", source=("vitals", "c-1", "v-1"))
        uow.commit()
    assert (same.version_id, same.changed) == (1, False)
    assert table_counts(engine)["outbox"] == 1
    assert table_counts(engine)["fhir_resource_history"] == 0

    clock.tick()
    with SqlUnitOfWork(engine, clock) as uow:
        second = uow.resources.save(observation(80), clinic_id="c-1", source=("vitals", "c-1", "v-1"))
        uow.outbox.append(second)
        uow.commit()
    assert (second.version_id, second.changed) == (2, True)

    with SqlUnitOfWork(engine, clock, write=False) as uow:
        current = uow.resources.read("Observation", "obs-1")
        v1 = uow.resources.read_version("Observation", "obs-1", 1)
        history = uow.resources.history("Observation", "obs-1")
        entries = uow.outbox.after(0)
    assert current is not None and v1 is not None and current.json and v1.json
    body = orjson.loads(current.json)
    assert body["meta"]["versionId"] == "2"
    assert body["meta"]["lastUpdated"] == "2026-03-02T14:02:00.123+00:00"
    assert body["meta"]["profile"] == ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-heart-rate"]
    assert body["valueQuantity"]["value"] == 80
    assert orjson.loads(v1.json)["meta"]["versionId"] == "1"
    assert orjson.loads(v1.json)["valueQuantity"]["value"] == 72
    assert [h.version_id for h in history] == [2, 1]
    assert [(e.resource_id, e.version_id, e.patient_id, e.clinic_id) for e in entries] == [
        ("obs-1", 1, "p-1", "c-1"),
        ("obs-1", 2, "p-1", "c-1"),
    ]
    assert entries[0].seq < entries[1].seq
    # the stored JSON is canonical: sorted keys, no whitespace
    assert current.json == orjson.dumps(body, option=orjson.OPT_SORT_KEYS)


def test_a_version_meta_in_the_input_does_not_make_a_new_version(engine) -> None:
    with SqlUnitOfWork(engine) as uow:
        uow.resources.save(observation())
        uow.commit()
    resent = observation()
    resent["meta"] = {**resent["meta"], "versionId": "7", "lastUpdated": "2020-01-01T00:00:00Z"}
    with SqlUnitOfWork(engine) as uow:
        write = uow.resources.save(resent)
        uow.commit()
    assert (write.version_id, write.changed) == (1, False)


def test_search_columns_and_tokens_are_extracted(engine) -> None:
    with SqlUnitOfWork(engine) as uow:
        uow.resources.save(observation(identifier=[{"system": "urn:x", "value": "v-1#hr"}]), clinic_id="c-1")
        uow.commit()
    with engine.connect() as connection:
        row = connection.execute(
            sa.text("SELECT patient_id, clinic_id, status, date_start, date_end FROM fhir_resource WHERE id = 'obs-1'")
        ).one()
        tokens = set(
            connection.execute(sa.text("SELECT param, system, value FROM fhir_search_token WHERE resource_id = 'obs-1'"))
        )
    assert row[0:3] == ("p-1", "c-1", "final")  # status is the row's column, not a token as well
    assert {tuple(t) for t in tokens} == {
        ("code", "http://loinc.org", "8867-4"),
        ("category", "http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs"),
        ("identifier", "urn:x", "v-1#hr"),
    }
    with SqlUnitOfWork(engine, write=False) as uow:
        stored = uow.resources.for_patient("p-1")
    assert [s.id for s in stored] == ["obs-1"]


def test_delete_moves_the_resource_to_history_with_a_tombstone(engine) -> None:
    with SqlUnitOfWork(engine) as uow:
        uow.resources.save(observation())
        uow.commit()
    with SqlUnitOfWork(engine) as uow:
        gone = uow.resources.delete("Observation", "obs-1")
        uow.commit()
    assert gone is not None and (gone.version_id, gone.deleted) == (2, True)
    with SqlUnitOfWork(engine, write=False) as uow:
        assert uow.resources.read("Observation", "obs-1") is None
        assert uow.resources.read_version("Observation", "obs-1", 2).deleted  # type: ignore[union-attr]
        assert uow.resources.read_version("Observation", "obs-1", 1).json  # type: ignore[union-attr]
        assert uow.resources.tokens("Observation", "obs-1") == set()
    with SqlUnitOfWork(engine) as uow:  # re-created: numbering continues
        again = uow.resources.save(observation())
        uow.commit()
    assert again.version_id == 3


def test_record_versions_are_kept(engine) -> None:
    with SqlUnitOfWork(engine) as uow:
        uow.records.save("patients", "c-1", "p-1", patient_key="p-1", data={"id": "p-1", "family_name": "Doe"})
        uow.commit()
    with SqlUnitOfWork(engine) as uow:
        updated = uow.records.save("patients", "c-1", "p-1", patient_key="p-1", data={"id": "p-1", "family_name": "Roe"})
        uow.commit()
    assert updated.version == 2
    with SqlUnitOfWork(engine, write=False) as uow:
        versions = uow.records.versions("patients", "c-1", "p-1")
        current = uow.records.get("patients", "c-1", "p-1")
    assert [(v, d["family_name"]) for v, d, _ in versions] == [(1, "Doe"), (2, "Roe")]
    assert current is not None and current.data["family_name"] == "Roe"
    assert current.created_at.tzinfo is not None


def test_records_are_read_many_at_once_by_their_whole_key(engine) -> None:
    saved = [("patients", "c-1", "p-1"), ("patients", "c-2", "p-1"), ("clinics", "c-1", "c-1"), ("practitioners", "c-1", "dr-1")]
    with SqlUnitOfWork(engine) as uow:
        for kind, clinic_id, key in saved:
            uow.records.save(kind, clinic_id, key, patient_key=key if kind == "patients" else None,
                             data={"id": key, "clinic_id": clinic_id})
        uow.commit()
    wanted = [
        ("patients", "c-1", "p-1"), ("clinics", "c-1", "c-1"), ("practitioners", "c-1", "dr-1"),
        ("patients", "c-3", "p-1"),  # same key, other clinic: absent
        ("practitioners", "c-1", "p-1"),  # same clinic and key, other kind: absent
        ("patients", "c-1", "p-1"),  # asked twice
    ]
    with SqlUnitOfWork(engine, write=False) as uow:
        found = uow.records.get_many(wanted)
        one = uow.records.get_many([("patients", "c-2", "p-1")])
        none = uow.records.get_many([])
        many = uow.records.get_many([("patients", "c-1", f"p-{i}") for i in range(40)])
    assert sorted(found) == sorted(saved[:1] + saved[2:])
    assert all(found[k].data == {"id": k[2], "clinic_id": k[1]} and found[k].version == 1 for k in found)
    assert list(one) == [("patients", "c-2", "p-1")] and one[("patients", "c-2", "p-1")].patient_key == "p-1"
    assert none == {}
    assert list(many) == [("patients", "c-1", "p-1")]


def test_postgres_reads_records_by_primary_key_probes_planned_once(engine) -> None:
    """The write path's records read (repository._select_records_pg): its generic plan, made
    while `record` is empty and never analysed (a new database), probes the primary key (with
    ix_record_patient led by clinic_id it probed that index on the clinic and filtered the key:
    every record of the clinic, once the clinic has some), and
    PostgreSQL keeps that one generic plan for the prepared statement instead of planning it on
    every execution (it did for the earlier unnest() form)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL plan check")
    from service.store.repository import _select_records_pg, driver_execute

    keys = [("clinics", "c-1", "c-1"), ("patients", "c-1", "p-7"), ("practitioners", "c-1", "dr-1")]
    params: dict[str, str] = {}
    for i, (kind, clinic_id, key) in enumerate(keys):
        params[f"k{i}"], params[f"c{i}"], params[f"v{i}"] = kind, clinic_id, key
    sql = _select_records_pg(len(keys))
    with engine.connect() as connection:
        scans = generic_plan_scans(connection, sql, params)
        assert scans == [("record", "Index Scan", "record_pkey")] * 3, scans
        connection.execute(sa.text(  # the clinic's records arrive; the plan is kept
            "INSERT INTO record (kind, clinic_id, key, patient_key, data, version, content_hash, created_at, updated_at) "
            "SELECT 'patients', 'c-1', 'p-' || i, 'p-' || i, '{}', 1, 'h', now(), now() FROM generate_series(1, 3000) i"
        ))
        for _ in range(20):  # psycopg prepares it on the 5th; PostgreSQL tries 5 custom plans first
            rows = driver_execute(connection, sql, params, fetch=True)
        assert [row[2] for row in rows] == ["p-7"]
        generic, custom = connection.exec_driver_sql(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE position('FROM record WHERE kind' in statement) > 0"
        ).one()
        assert custom <= 5 and generic >= 10, (generic, custom)


def test_leaving_without_commit_or_with_an_exception_rolls_back(engine) -> None:
    before = table_counts(engine)
    with SqlUnitOfWork(engine) as uow:
        uow.resources.save(observation())
    assert table_counts(engine) == before
    with pytest.raises(RuntimeError):
        with SqlUnitOfWork(engine) as uow:
            write = uow.resources.save(observation())
            uow.outbox.append(write)
            raise RuntimeError("boom")
    assert table_counts(engine) == before
