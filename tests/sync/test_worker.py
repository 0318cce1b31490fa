"""The worker against an in-process FHIR server (fake_fhir.FakeFhir), on SQLite and PostgreSQL:
order, coalescing, chunking, id-assigning targets, dead letters and replay, retries,
deletions and the SQLite single-worker lock. The real peers are in test_peers_*.py."""

from __future__ import annotations

import dataclasses

import httpx
import orjson
import pytest

from service.store.sync_repository import StatusQuery, SyncStore
from service.sync.client import FhirTargetClient
from service.sync.targets import TargetConfig
from service.sync.worker import SyncWorker, WorkerRefused

from .fake_fhir import FakeFhir
from .support import FAST, delete_resource, load_courses, migrated_engine, put_resource, stored_keys, worker_for

BASE = "https://ehr.example/fhir"


@pytest.fixture
def engine(database_url: str):  # type: ignore[no-untyped-def]
    engine = migrated_engine(database_url)
    yield engine
    engine.dispose()


def _run(engine, fake: FakeFhir, target: TargetConfig, **options) -> SyncWorker:  # type: ignore[no-untyped-def]
    worker = worker_for(engine, target, lambda t: FhirTargetClient(t, http=fake.client()),
                        dataclasses.replace(FAST, **options))
    report = worker.run(until_idle=True, max_seconds=120)
    assert report.fatal is None
    return worker


@pytest.mark.parametrize("mode", ["transaction", "per-resource"])
def test_every_resource_reaches_the_target_once_in_an_order_it_accepts(engine, mode: str) -> None:
    load_courses(engine, 2)
    fake = FakeFhir(transactions=mode == "transaction", max_entries=25)
    _run(engine, fake, TargetConfig(name="ehr", base_url=BASE))
    assert set(fake.resources) == stored_keys(engine)
    assert all(v == 1 for v in fake.versions.values())
    assert all(len(b["entry"]) <= 25 for b in fake.bundles)
    if mode == "transaction":
        assert fake.bundles and not [r for r in fake.requests if r[0] == "PUT"]
    counts = SyncStore(engine).status_counts("ehr")["ehr"]
    assert counts["sent"] == len(stored_keys(engine)) and counts["dead"] == counts["pending"] == 0


def test_only_the_newest_version_is_sent(engine) -> None:
    org = {"resourceType": "Organization", "id": "org-1", "name": "v1"}
    for name in ("v1", "v2", "v3"):
        version = put_resource(engine, {**org, "name": name})
    assert version == 3
    fake = FakeFhir()
    _run(engine, fake, TargetConfig(name="ehr", base_url=BASE))
    assert fake.versions[("Organization", "org-1")] == 1
    assert fake.resources[("Organization", "org-1")]["name"] == "v3"
    [row] = SyncStore(engine).status(StatusQuery(target="ehr", resource_id="org-1"))
    assert (row.status, row.sent_version_id, row.target_id) == ("sent", 3, "org-1")
    put_resource(engine, {**org, "name": "v4"})  # a later change is sent again
    _run(engine, fake, TargetConfig(name="ehr", base_url=BASE))
    assert fake.resources[("Organization", "org-1")]["name"] == "v4"


def test_id_assigning_target_gets_conditional_updates_with_rewritten_references(engine) -> None:
    load_courses(engine, 1)
    fake = FakeFhir(assign_ids=True, max_entries=50, max_conditional=8)
    target = TargetConfig(name="ehr", base_url=BASE, id_policy="server")
    _run(engine, fake, target)
    ours = stored_keys(engine)
    assert len(fake.resources) == len(ours)
    assert all(len(b["entry"]) <= 8 for b in fake.bundles)
    id_map = SyncStore(engine).id_map("ehr", ours)
    assert len(id_map) == len(ours)
    theirs = {(k[0], v) for k, v in id_map.items()}
    assert set(fake.resources) == theirs  # every reference resolved on the target (it enforces them)
    # sending again changes nothing and creates nothing
    SyncStore(engine).backfill("ehr")
    _run(engine, fake, target)
    assert len(fake.resources) == len(ours)


def test_a_refused_resource_is_a_dead_letter_blocks_nothing_else_and_replays(engine) -> None:
    load_courses(engine, 1)
    fake = FakeFhir(max_entries=50)
    fake.refuse = lambda r: "Observation.status: minimum required = 1" if r.get("id") == "bad-obs" else None
    patient_id = next(k[1] for k in stored_keys(engine) if k[0] == "Patient")
    bad = {"resourceType": "Observation", "id": "bad-obs", "code": {"text": "x"}, "subject": {"reference": f"Patient/{patient_id}"}}
    put_resource(engine, bad)
    follower = {"resourceType": "Flag", "id": "needs-bad", "status": "active", "code": {"text": "y"},
                "subject": {"reference": f"Patient/{patient_id}"}, "extension": [
                    {"url": "http://example.org/x", "valueReference": {"reference": "Observation/bad-obs"}}]}
    put_resource(engine, follower)
    _run(engine, fake, TargetConfig(name="ehr", base_url=BASE))
    store = SyncStore(engine)
    dead = {(d.resource_type, d.resource_id): d for d in store.status(StatusQuery(target="ehr", status="dead"))}
    assert set(dead) == {("Observation", "bad-obs"), ("Flag", "needs-bad")}
    assert "minimum required" in (dead[("Observation", "bad-obs")].last_error or "")
    assert dead[("Flag", "needs-bad")].blocked_by == "Observation/bad-obs"
    assert len(fake.resources) == len(stored_keys(engine)) - 2  # everything else went through
    fake.refuse = lambda r: None  # the fix (on the target side here)
    assert store.replay("ehr", ("Observation", "bad-obs")) == 2
    _run(engine, fake, TargetConfig(name="ehr", base_url=BASE))
    assert ("Observation", "bad-obs") in fake.resources and ("Flag", "needs-bad") in fake.resources
    assert store.status_counts("ehr")["ehr"]["dead"] == 0


def test_a_new_version_of_a_dead_letter_is_sent(engine) -> None:
    fake = FakeFhir()
    fake.refuse = lambda r: "name required" if not r.get("name") else None
    put_resource(engine, {"resourceType": "Organization", "id": "o1"})
    _run(engine, fake, TargetConfig(name="ehr", base_url=BASE))
    assert SyncStore(engine).status_counts("ehr")["ehr"]["dead"] == 1
    put_resource(engine, {"resourceType": "Organization", "id": "o1", "name": "fixed"})
    _run(engine, fake, TargetConfig(name="ehr", base_url=BASE))
    assert fake.resources[("Organization", "o1")]["name"] == "fixed"


def test_temporary_failures_are_retried_and_retry_after_is_honoured(engine) -> None:
    put_resource(engine, {"resourceType": "Organization", "id": "o1", "name": "a"})
    fake = FakeFhir()
    fake.fail_next = [httpx.Response(200, json=fake.metadata()), httpx.Response(503, headers={"Retry-After": "1"}),
                      httpx.Response(429), httpx.Response(502)]
    worker = worker_for(engine, TargetConfig(name="ehr", base_url=BASE), lambda t: FhirTargetClient(t, http=fake.client()))
    rt = worker.runtimes[0]
    assert worker.step(rt) == 1
    [row] = SyncStore(engine).status(StatusQuery(target="ehr"))
    assert row.status == "retrying" and row.attempts == 1 and "HTTP 503" in (row.last_error or "")
    assert row.next_attempt_at is not None and (row.next_attempt_at - row.updated_at).total_seconds() >= 0.99
    report = worker.run(until_idle=True, max_seconds=60)
    assert report.sent == 1 and report.retried >= 2
    assert fake.resources[("Organization", "o1")]["name"] == "a"


def test_a_transaction_refused_for_one_entry_falls_back_to_single_sends(engine) -> None:
    for i in range(5):
        put_resource(engine, {"resourceType": "Organization", "id": f"o{i}", "name": "x" if i != 3 else ""})
    fake = FakeFhir()
    fake.refuse = lambda r: "name must not be empty" if r.get("name") == "" else None
    _run(engine, fake, TargetConfig(name="ehr", base_url=BASE))
    assert {k[1] for k in fake.resources} == {"o0", "o1", "o2", "o4"}
    assert [r for r in fake.requests if r[0] == "PUT"]  # the fallback
    [dead] = SyncStore(engine).status(StatusQuery(target="ehr", status="dead"))
    assert dead.resource_id == "o3" and "must not be empty" in (dead.last_error or "")


def test_deleted_resources_are_deleted_on_the_target(engine) -> None:
    put_resource(engine, {"resourceType": "Organization", "id": "o1", "name": "a"})
    fake = FakeFhir()
    _run(engine, fake, TargetConfig(name="ehr", base_url=BASE))
    delete_resource(engine, "Organization", "o1")
    _run(engine, fake, TargetConfig(name="ehr", base_url=BASE))
    assert ("Organization", "o1") not in fake.resources
    [row] = SyncStore(engine).status(StatusQuery(target="ehr"))
    assert row.deleted and row.status == "sent"


def test_type_filter_and_a_second_target_backfilled_later(engine) -> None:
    load_courses(engine, 1)
    first, second = FakeFhir(enforce_references=False), FakeFhir()
    _run(engine, first, TargetConfig(name="first", base_url=BASE, resource_types=frozenset({"Patient", "Organization"})))
    assert {k[0] for k in first.resources} == {"Patient", "Organization"}
    _run(engine, second, TargetConfig(name="second", base_url=BASE))  # a new target starts at the beginning
    assert set(second.resources) == stored_keys(engine)


def test_sqlite_refuses_a_second_worker(tmp_path) -> None:
    engine = migrated_engine(f"sqlite:///{tmp_path / 'one.sqlite3'}")
    target = TargetConfig(name="ehr", base_url=BASE)
    first = SyncWorker(SyncStore(engine), [target], FAST, worker_id="first")
    second = SyncWorker(SyncStore(engine), [target], FAST, worker_id="second")
    first.acquire_single_worker_lock()
    with pytest.raises(WorkerRefused, match="first"):
        second.acquire_single_worker_lock()
    SyncStore(engine).release_lock("sqlite-single-worker", "first")
    second.acquire_single_worker_lock()


def test_independent_partitions_are_sent_concurrently_within_max_in_flight(engine) -> None:
    import threading
    import time

    load_courses(engine, 3)
    fake = FakeFhir(max_entries=10)  # enforces references: a chunk sent before what it refers to is refused
    lock, state = threading.Lock(), {"now": 0, "max": 0}

    def handle(request: httpx.Request) -> httpx.Response:
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        try:
            time.sleep(0.01)
            return fake.handle(request)
        finally:
            with lock:
                state["now"] -= 1

    target = TargetConfig(name="ehr", base_url=BASE, max_in_flight=3)
    worker = worker_for(engine, target, lambda t: FhirTargetClient(t, http=httpx.Client(transport=httpx.MockTransport(handle))),
                        dataclasses.replace(FAST, concurrency=1, batch_items=5000, batch_partitions=50))
    report = worker.run(until_idle=True, max_seconds=120)
    assert report.fatal is None and report.dead == 0
    assert set(fake.resources) == stored_keys(engine)
    assert all(v == 1 for v in fake.versions.values())
    assert 1 < state["max"] <= 3  # one lane, several requests at once, never more than the target allows


def test_every_transmission_is_audited_by_the_time_the_worker_returns(engine) -> None:
    """Transmission AuditEvents are group-committed by a writer thread (store/audit_buffer.py);
    `run` writes what is pending before it returns, so none is lost at exit."""
    from service.store.audit import AuditLog, AuditQuery

    load_courses(engine, 1)
    fake = FakeFhir()
    _run(engine, fake, TargetConfig(name="ehr", base_url=BASE))
    events = [orjson.loads(line) for line in AuditLog(engine).export(AuditQuery())]
    sent = [e for e in events if e["subtype"][0]["code"] == "sync-send"]
    assert sent and all(e["type"]["code"] == "110106" and e["outcome"] == "0" for e in sent)
    entities = {x["what"]["reference"].split("/_history/")[0] for e in sent for x in e["entity"] if "reference" in x["what"]}
    assert entities >= {f"{t}/{i}" for t, i in fake.resources}  # every resource on the target, audited


def test_an_ingester_that_keeps_losing_the_cursor_steps_back_instead_of_failing(engine, monkeypatch) -> None:
    """Two workers ingesting the same outbox: when the cursor moves under every attempt (the
    other one is taking the rows in), ingest reports nothing taken and not caught up - the
    lane goes on to claim what the other ingested - rather than raising and crashing the lane;
    once the cursor stays put, the same store ingests normally."""
    load_courses(engine, 1)
    store = SyncStore(engine)
    moved = []

    def always_moved(*args, **kwargs):  # type: ignore[no-untyped-def]
        moved.append(1)

    monkeypatch.setattr(store, "_ingest_once", always_moved)
    result = store.ingest("ehr", None, batch=100, gap_timeout=60)
    assert (result.rows, result.caught_up) == (0, False) and len(moved) == 5
    monkeypatch.undo()
    assert SyncStore(engine).ingest("ehr", None, batch=100_000, gap_timeout=60).rows > 0
