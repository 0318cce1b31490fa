"""The batched write path (FhirResourceRepository.save_many, the batched outbox, one record
read per put) on every backend: the same results as writing one resource at a time, a fixed
number of statements per record write whatever the number of resources, atomicity, and
concurrent writers on PostgreSQL (unique-key conflicts become ConcurrentWriteError and
put_record's retry)."""

from __future__ import annotations

import datetime as dt
import threading
from typing import Callable

import pytest
import sqlalchemy as sa

from service.store import SqlUnitOfWork
from service.store import repository as repository_module
from service.store.repository import RecordRepository, ResourceInput
from service.store.unit_of_work import ConcurrentWriteError
from service.usecases import WriteStatus, put_record
from service.usecases.records import preview_fhir
from tests import factories as f
from tests.store.support import table_contents, table_counts

NOW = dt.datetime(2026, 3, 2, 14, 0, 0, 123000, tzinfo=dt.timezone.utc)
SOURCE_A = ("vitals", "c-1", "v-1")
SOURCE_B = ("vitals", "c-1", "v-2")


def clock() -> dt.datetime:
    return NOW


def resource(rid: str, value: int = 1, resource_type: str = "Observation") -> dict:
    return {
        "resourceType": resource_type,
        "id": rid,
        "meta": {"versionId": "99", "lastUpdated": "2020-01-01T00:00:00Z", "profile": ["http://example.org/p"]},
        "status": "final",
        "code": {"coding": [{"system": "http://loinc.org", "code": f"code-{value}"}]},
        "subject": {"reference": "Patient/p-1"},
        "effectiveDateTime": "2026-03-02T09:40:00-05:00",
        "valueQuantity": {"value": value},
    }


def snapshot(engine: sa.Engine, prefix: str) -> dict:
    """Versions, history, tokens and search columns of the resources whose id starts with
    `prefix` (ids reported without it), to compare two write paths."""
    with SqlUnitOfWork(engine, clock, write=False) as uow:
        with engine.connect() as connection:
            ids = [
                r[0]
                for r in connection.execute(
                    sa.text("SELECT id FROM fhir_resource WHERE id LIKE :p UNION SELECT id FROM fhir_resource_history WHERE id LIKE :p"),
                    {"p": prefix + "%"},
                )
            ]
        out = {}
        for rid in sorted(ids):
            versions = uow.resources.history("Observation", rid)
            out[rid.removeprefix(prefix)] = (
                [(v.version_id, v.deleted, v.json.replace(prefix.encode(), b"") if v.json else None) for v in versions],
                uow.resources.tokens("Observation", rid),
            )
        return out


def write_one_by_one(uow: SqlUnitOfWork, items: list[ResourceInput], prune: tuple[str, str, str] | None) -> list[tuple]:
    writes = [uow.resources.save(i.resource, clinic_id=i.clinic_id, source=i.source) for i in items]
    if prune is not None:
        kept = {(i.resource["resourceType"], i.resource["id"]) for i in items if i.source == prune}
        for old in uow.resources.by_source(*prune):
            if (old.resource_type, old.id) not in kept:
                gone = uow.resources.delete(old.resource_type, old.id)
                assert gone is not None
                writes.append(gone)
    return [(w.resource_type, w.id, w.version_id, w.changed, w.deleted, w.patient_id, w.clinic_id) for w in writes]


def write_batched(uow: SqlUnitOfWork, items: list[ResourceInput], prune: tuple[str, str, str] | None) -> list[tuple]:
    batch = uow.resources.save_many(items, prune_source=prune)
    return [
        (w.resource_type, w.id, w.version_id, w.changed, w.deleted, w.patient_id, w.clinic_id)
        for w in batch.writes + batch.deleted
    ]


def test_save_many_gives_the_same_results_as_one_save_at_a_time(engine) -> None:
    steps: list[tuple[list[tuple[str, int, tuple | None]], tuple | None]] = [
        # (id, value, source) per item, prune source
        ([("r1", 1, SOURCE_A), ("r2", 1, SOURCE_A), ("r3", 1, SOURCE_A)], SOURCE_A),
        # r1 unchanged, r2 changed, r4 new, r3 no longer produced -> deleted with a tombstone
        ([("r1", 1, SOURCE_A), ("r2", 2, SOURCE_A), ("r4", 1, SOURCE_A)], SOURCE_A),
        # the same id twice in one batch (two versions), r3 again after its deletion, r1 moves source
        ([("r2", 3, SOURCE_A), ("r2", 4, SOURCE_A), ("r3", 5, SOURCE_A), ("r1", 1, SOURCE_B)], SOURCE_A),
        # nothing changed at all
        ([("r2", 4, SOURCE_A), ("r3", 5, SOURCE_A)], SOURCE_A),
        # r1 (now of B) survives a prune of A; unchanged r2 without a source keeps source A, so
        # the prune deletes it; changed r3 without a source loses its source
        ([("r2", 4, None), ("r3", 6, None)], SOURCE_A),
    ]
    for items_spec, prune in steps:
        results = {}
        for prefix, write in (("one-", write_one_by_one), ("batch-", write_batched)):
            def own(source: tuple | None) -> tuple | None:  # each path has its own sources
                return (source[0], source[1], prefix + source[2]) if source else None

            items = [ResourceInput(resource(prefix + rid, value), "c-1", own(source)) for rid, value, source in items_spec]
            with SqlUnitOfWork(engine, clock) as uow:
                results[prefix] = [(t, i.removeprefix(prefix), *rest) for t, i, *rest in write(uow, items, own(prune))]
                uow.commit()
        assert results["batch-"] == results["one-"]
    assert snapshot(engine, "batch-") == snapshot(engine, "one-")
    versions = {rid: [v for v, _, _ in history] for rid, (history, _) in snapshot(engine, "batch-").items()}
    assert versions["r2"] == [5, 4, 3, 2, 1]  # 3 and 4 written in one batch, 5 the tombstone
    assert versions["r3"] == [4, 3, 2, 1]  # v2 is the tombstone; writing it again continues at 3
    assert versions["r4"] == [2, 1]
    with SqlUnitOfWork(engine, clock, write=False) as uow:
        assert [r.id for r in uow.resources.by_source("vitals", "c-1", "batch-v-2")] == ["batch-r1"]
        assert uow.resources.by_source("vitals", "c-1", "batch-v-1") == []


def test_a_version_meta_in_the_input_is_replaced_and_ignored_for_change_detection(engine) -> None:
    with SqlUnitOfWork(engine, clock) as uow:
        first = uow.resources.save_many([ResourceInput(resource("m1"))]).writes[0]
        uow.commit()
    again = resource("m1")
    again["meta"] = {**again["meta"], "versionId": "7", "lastUpdated": "2021-01-01T00:00:00Z"}
    with SqlUnitOfWork(engine, clock) as uow:
        second = uow.resources.save_many([ResourceInput(again)]).writes[0]
        stored = uow.resources.read("Observation", "m1")
        uow.commit()
    assert (first.version_id, first.changed, second.version_id, second.changed) == (1, True, 1, False)
    assert stored is not None and b'"versionId":"1"' in (stored.json or b"")
    assert b'"lastUpdated":"2026-03-02T14:00:00.123+00:00"' in (stored.json or b"")


def count_statements(engine: sa.Engine, action: Callable[[], object]) -> int:
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:  # type: ignore[no-untyped-def]
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK", "PRAGMA", "SELECT 1", ";")):
            statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        action()
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    return len(statements)


def seed(uow: Callable[[], SqlUnitOfWork]) -> None:
    for kind in ("clinics", "practitioners", "locations", "patients", "enrollments", "administration-sessions"):
        put_record(uow(), kind, f.FACTORIES[kind]())


def test_a_record_write_takes_the_same_few_statements_whatever_its_resource_count(engine) -> None:
    uow = lambda: SqlUnitOfWork(engine)  # noqa: E731
    seed(uow)
    one = count_statements(engine, lambda: put_record(uow(), "vitals", f.vitals(id="v-one", heart_rate_bpm=...)))
    two = count_statements(engine, lambda: put_record(uow(), "vitals", f.vitals(id="v-two")))
    assert one == two
    # PostgreSQL: every INSERT (record, version, resources, tokens, outbox) as one statement at
    # commit (service/store/write_behind.py), and nothing else - the references come from the
    # record cache (the seed read them; the INSERT checks their versions), the record is
    # presumed new, and so are its resources (read_for_write, save_many's presume_new);
    # SQLite reads the records and the resources' state and runs one executemany per table
    assert two == 1 if engine.dialect.name == "postgresql" else two <= 9, two
    update = count_statements(engine, lambda: put_record(uow(), "vitals", f.vitals(id="v-two", heart_rate_bpm=80)))
    assert update <= (9 if engine.dialect.name == "postgresql" else 11), update
    unchanged = count_statements(engine, lambda: put_record(uow(), "vitals", f.vitals(id="v-two", heart_rate_bpm=80)))
    assert unchanged <= 2, unchanged  # the record read and its resources (by source)


def test_a_failure_in_the_batched_insert_leaves_every_table_unchanged(engine, monkeypatch) -> None:
    uow = lambda: SqlUnitOfWork(engine)  # noqa: E731
    seed(uow)
    before = table_contents(engine)
    real = repository_module.insert_rows

    def failing(connection, batches, required=()):  # type: ignore[no-untyped-def]
        if any(table.name == "fhir_search_token" for table, rows in batches if rows):
            raise RuntimeError("disk full")
        return real(connection, batches, required)

    monkeypatch.setattr(repository_module, "insert_rows", failing)
    with pytest.raises(RuntimeError):
        put_record(uow(), "vitals", f.vitals())
    with pytest.raises(RuntimeError):
        put_record(uow(), "patients", f.patient(family_name="Changed"))
    assert table_contents(engine) == before


def test_outbox_rows_follow_append_order_and_are_discarded_on_rollback(engine) -> None:
    with SqlUnitOfWork(engine, clock) as uow:
        batch = uow.resources.save_many([ResourceInput(resource(f"o{i}")) for i in (3, 1, 2)])
        for write in batch.writes:
            uow.outbox.append(write)
        assert [e.resource_id for e in uow.outbox.after(0)] == ["o3", "o1", "o2"]  # flushed before reading
        uow.commit()
    with SqlUnitOfWork(engine, clock) as uow:
        uow.outbox.append(batch.writes[0])
        uow.rollback()
        uow.commit()
    with SqlUnitOfWork(engine, clock, write=False) as uow:
        entries = uow.outbox.after(0)
    assert [e.resource_id for e in entries] == ["o3", "o1", "o2"]
    assert entries[0].seq < entries[1].seq < entries[2].seq


# --------------------------------------------------------------------------- concurrency (PostgreSQL)


@pytest.fixture
def pg_engine(engine) -> sa.Engine:
    if engine.dialect.name != "postgresql":
        pytest.skip("concurrent writers: SQLite serialises write transactions (BEGIN IMMEDIATE)")
    return engine


class ReadTogether:
    """Makes the first record read of each of `n` threads wait for the others, so all of them
    decide on the same stale state before any writes (then they race on unique keys). A read
    is `get_many`, or `read_for_write` (which may take the records from the cache instead)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, n: int, kind: str) -> None:
        self.barrier = threading.Barrier(n, timeout=20)
        self.kind = kind
        self.seen: set[int] = set()
        self.reads = 0
        self._inside = threading.local()  # read_for_write's own get_many is the same read
        real_get_many, real_read_for_write = RecordRepository.get_many, RecordRepository.read_for_write

        def get_many(repo, keys):  # type: ignore[no-untyped-def]
            keys = list(keys)
            found = real_get_many(repo, keys)
            if not getattr(self._inside, "on", False):
                self.arrive(keys)
            return found

        def read_for_write(repo, references, own):  # type: ignore[no-untyped-def]
            self._inside.on = True
            try:
                result = real_read_for_write(repo, references, own)
            finally:
                self._inside.on = False
            self.arrive([*references, own])
            return result

        monkeypatch.setattr(RecordRepository, "get_many", get_many)
        monkeypatch.setattr(RecordRepository, "read_for_write", read_for_write)

    def arrive(self, keys: list) -> None:
        if any(k[0] == self.kind for k in keys):
            self.reads += 1
            me = threading.get_ident()
            if me not in self.seen:
                self.seen.add(me)
                self.barrier.wait()


def run_threads(n: int, target: Callable[[int], object]) -> list[object]:
    results: list[object] = [None] * n

    def run(i: int) -> None:
        try:
            results[i] = target(i)
        except Exception as error:  # noqa: BLE001 - reported to the test
            results[i] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_concurrent_creates_of_one_record_conflict_retry_and_store_it_once(pg_engine, monkeypatch) -> None:
    uow = lambda: SqlUnitOfWork(pg_engine)  # noqa: E731
    seed(uow)
    before = table_counts(pg_engine)
    n = 4
    together = ReadTogether(monkeypatch, n, "vitals")
    results = run_threads(n, lambda i: put_record(uow(), "vitals", f.vitals()))
    assert all(not isinstance(r, Exception) for r in results), results
    produced = len(results[0].fhir)  # type: ignore[attr-defined]
    statuses = sorted(r.status.value for r in results)  # type: ignore[attr-defined]
    assert statuses == ["created"] + ["unchanged"] * (n - 1)
    assert together.reads > n  # the losers hit a unique key, got ConcurrentWriteError and retried
    after = table_counts(pg_engine)
    assert after["record"] == before["record"] + 1
    assert after["record_version"] == before["record_version"] + 1
    assert after["fhir_resource"] - before["fhir_resource"] == produced
    assert after["outbox"] - before["outbox"] == produced
    assert after["fhir_resource_history"] == before["fhir_resource_history"]
    assert len({frozenset(r.fhir) for r in results}) == 1  # type: ignore[attr-defined]


def test_concurrent_updates_of_one_record_keep_versions_history_and_outbox_consistent(pg_engine, monkeypatch) -> None:
    uow = lambda: SqlUnitOfWork(pg_engine)  # noqa: E731
    seed(uow)
    put_record(uow(), "vitals", f.vitals())
    n = 4
    together = ReadTogether(monkeypatch, n, "vitals")
    results = run_threads(n, lambda i: put_record(uow(), "vitals", f.vitals(heart_rate_bpm=90 + i, systolic_mmhg=130 + i)))
    assert together.reads > n
    ok = [r for r in results if not isinstance(r, Exception)]
    assert ok and all(r.status is WriteStatus.UPDATED for r in ok)  # type: ignore[attr-defined]
    assert all(isinstance(r, ConcurrentWriteError) for r in results if isinstance(r, Exception)), results
    with pg_engine.connect() as connection:
        record_version = connection.execute(
            sa.text("SELECT version FROM record WHERE kind = 'vitals' AND key = 'vit-1'")
        ).scalar_one()
        versions = [r[0] for r in connection.execute(
            sa.text("SELECT version FROM record_version WHERE kind = 'vitals' AND key = 'vit-1' ORDER BY version")
        )]
        assert versions == list(range(1, record_version + 1)) and record_version == 1 + len(ok)
        resources = connection.execute(
            sa.text("SELECT resource_type, id, version_id FROM fhir_resource WHERE source_kind = 'vitals'")
        ).all()
        for resource_type, rid, current in resources:
            history = [r[0] for r in connection.execute(
                sa.text("SELECT version_id FROM fhir_resource_history WHERE resource_type = :t AND id = :i ORDER BY version_id"),
                {"t": resource_type, "i": rid},
            )]
            outbox = [r[0] for r in connection.execute(
                sa.text("SELECT version_id FROM outbox WHERE resource_type = :t AND resource_id = :i ORDER BY seq"),
                {"t": resource_type, "i": rid},
            )]
            assert history == list(range(1, current)), (rid, history, current)
            assert outbox == list(range(1, current + 1)), (rid, outbox, current)


def test_concurrent_writers_of_different_records_sharing_nothing_all_succeed(pg_engine) -> None:
    uow = lambda: SqlUnitOfWork(pg_engine)  # noqa: E731
    seed(uow)
    before = table_counts(pg_engine)
    results = run_threads(8, lambda i: put_record(uow(), "vitals", f.vitals(id=f"vit-{i}")))
    assert all(not isinstance(r, Exception) and r.status is WriteStatus.CREATED for r in results), results  # type: ignore[attr-defined]
    after = table_counts(pg_engine)
    assert after["record"] - before["record"] == 8
    produced = sum(len(r.fhir) for r in results)  # type: ignore[attr-defined]
    assert after["outbox"] - before["outbox"] == after["fhir_resource"] - before["fhir_resource"] == produced


# --------------------------------------------------------------------------- presumed-new resources (PostgreSQL)


def history_versions(engine: sa.Engine, resource_type: str, rid: str) -> list[tuple[int, bool]]:
    with SqlUnitOfWork(engine, clock, write=False) as uow:
        return [(v.version_id, v.deleted) for v in uow.resources.history(resource_type, rid)]


def test_a_new_records_resource_deleted_before_continues_its_history_after_one_retry(pg_engine) -> None:
    """A new record's resources are presumed new (no state read); one of them was written and
    deleted before through the FHIR API, so the presumed version 1 is below its history: the
    INSERT's guard fails the attempt, and the retry reads the state and writes version 4."""
    uow = lambda: SqlUnitOfWork(pg_engine)  # noqa: E731
    seed(uow)
    payload = f.vitals(id="v-reborn")
    produced = [(r["resourceType"], r["id"]) for r in preview_fhir("vitals", payload, uow_factory=uow)]
    rtype, rid = produced[0]
    with SqlUnitOfWork(pg_engine, clock) as u:
        u.resources.save(resource(rid, 1, rtype))
        u.resources.save(resource(rid, 2, rtype))
        u.resources.delete(rtype, rid)
        u.commit()
    assert history_versions(pg_engine, rtype, rid) == [(3, True), (2, False), (1, False)]
    before = table_counts(pg_engine)
    results: list = []
    statements = count_statements(pg_engine, lambda: results.append(put_record(uow(), "vitals", payload)))
    # presumed: the INSERT alone (refused); retry: records read + state read + INSERT
    assert statements == 4
    result = results[0]
    assert result.status is WriteStatus.CREATED
    versions = {(r.resource_type, r.id): r.version_id for r in result.fhir}
    assert versions[(rtype, rid)] == 4
    assert {v for k, v in versions.items() if k != (rtype, rid)} == {1}
    assert history_versions(pg_engine, rtype, rid) == [(4, False), (3, True), (2, False), (1, False)]
    after = table_counts(pg_engine)
    assert after["record"] == before["record"] + 1
    assert after["fhir_resource"] - before["fhir_resource"] == len(produced)
    assert after["outbox"] - before["outbox"] == len(produced)


def test_a_new_records_resource_current_from_elsewhere_becomes_its_next_version(pg_engine) -> None:
    """The same when the id is current without a source (written through the FHIR API): the
    presumed INSERT meets the primary key, and the retry updates it to version 2 under the
    record."""
    uow = lambda: SqlUnitOfWork(pg_engine)  # noqa: E731
    seed(uow)
    payload = f.vitals(id="v-adopt")
    rtype, rid = next((r["resourceType"], r["id"]) for r in preview_fhir("vitals", payload, uow_factory=uow))
    with SqlUnitOfWork(pg_engine, clock) as u:
        u.resources.save(resource(rid, 7, rtype))
        u.commit()
    result = put_record(uow(), "vitals", payload)
    assert result.status is WriteStatus.CREATED
    assert {(r.resource_type, r.id): r.version_id for r in result.fhir}[(rtype, rid)] == 2
    with SqlUnitOfWork(pg_engine, clock, write=False) as u:
        assert (rtype, rid) in {(s.resource_type, s.id) for s in u.resources.by_source("vitals", f.CLINIC, "v-adopt")}
    assert history_versions(pg_engine, rtype, rid) == [(2, False), (1, False)]


def test_the_insert_guard_refuses_a_current_version_at_or_below_its_history_only(pg_engine) -> None:
    with SqlUnitOfWork(pg_engine, clock) as u:
        u.resources.save(resource("g-1"))
        u.resources.save(resource("g-1", 2))
        u.resources.delete("Observation", "g-1")  # history 1, 2 and the deletion as 3
        u.commit()

    def insert(rid: str, version: int) -> None:
        row = {"resource_type": "Observation", "id": rid, "version_id": version, "last_updated": NOW,
               "json": b"{}", "content_hash": "h"}
        with pg_engine.begin() as connection:
            repository_module.insert_rows(connection, [(repository_module._RES, [row])])

    for version in (1, 3):
        with pytest.raises(sa.exc.IntegrityError, match=r"Observation/g-1 already has version [123] in its history"):
            insert("g-1", version)
    insert("g-2", 1)  # another id's history is no concern
    insert("g-1", 4)  # above its history: accepted
    with pg_engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT id, version_id FROM fhir_resource WHERE id IN ('g-1', 'g-2') ORDER BY id"))
        assert rows.all() == [("g-1", 4), ("g-2", 1)]
