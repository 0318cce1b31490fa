"""The worker against the real peers (tests/peers): HAPI (validating, one PUT per resource),
Medplum (transactions with its declared limits; and as an id-assigning target with
conditional updates). Peers are session-wide: each test resets the peer it uses."""

from __future__ import annotations

import collections
import dataclasses
import itertools

import orjson
import pytest

from service.courses import generated_courses
from service.store.sync_repository import StatusQuery, SyncStore
from service.store.unit_of_work import SqlUnitOfWork
from service.sync import bundles
from service.sync.targets import TargetConfig
from service.sync.worker import SyncWorker
from service.usecases import put_record
from tests.peers.fixtures import PeerServer

from .recording_proxy import RecordingProxy
from .support import FAST, load_courses, migrated_engine, put_resource, stored_keys


@pytest.fixture
def engine(database_url: str):  # type: ignore[no-untyped-def]
    engine = migrated_engine(database_url)
    yield engine
    engine.dispose()


def _sync(engine, target: TargetConfig, **options) -> SyncWorker:  # type: ignore[no-untyped-def]
    worker = SyncWorker(SyncStore(engine), [target], dataclasses.replace(FAST, **options))
    report = worker.run(until_idle=True, max_seconds=240)
    assert report.fatal is None
    return worker


def _stored(engine) -> dict[tuple[str, str], dict]:  # type: ignore[no-untyped-def]
    import sqlalchemy as sa

    with engine.connect() as connection:
        return {(r[0], r[1]): orjson.loads(r[2]) for r in connection.execute(sa.text("SELECT resource_type, id, json FROM fhir_resource"))}


def _content(resource: dict) -> dict:
    return {k: v for k, v in resource.items() if k not in ("meta", "id", "text")}


def _load_first_records(engine, count: int, seed: int = 11) -> None:  # type: ignore[no-untyped-def]
    for kind, payload in itertools.islice(generated_courses(1, seed), count):
        put_record(SqlUnitOfWork(engine), kind, payload)


def test_hapi_receives_every_resource_by_put_at_its_latest_version(engine, hapi_peer: PeerServer) -> None:
    hapi_peer.reset()
    _load_first_records(engine, 14)
    target = TargetConfig(name="hapi", base_url=hapi_peer.base_url)
    worker = _sync(engine, target)
    caps = worker.runtimes[0].capabilities()
    assert not caps.transactions  # so the per-resource path was used
    stored = _stored(engine)
    assert len(stored) >= 20
    for (resource_type, resource_id), ours in stored.items():
        response = hapi_peer.read(resource_type, resource_id)
        assert response.status_code == 200, (resource_type, resource_id)
        assert _content(response.json()) == _content(ours)
    by_type = collections.Counter(k[0] for k in stored)
    for resource_type, n in by_type.items():
        assert hapi_peer.count(resource_type) == n
    counts = SyncStore(engine).status_counts("hapi")["hapi"]
    assert counts["sent"] == len(stored) and counts["dead"] == 0


def test_a_resource_hapi_refuses_is_a_dead_letter_with_its_message_and_succeeds_on_replay_after_the_fix(
    engine, hapi_peer: PeerServer
) -> None:
    hapi_peer.reset()
    _load_first_records(engine, 6, seed=12)
    patient_id = next(k[1] for k in stored_keys(engine) if k[0] == "Patient")
    invalid = {  # no status, no code: HAPI's validator refuses it (422)
        "resourceType": "Observation", "id": "obs-invalid-1", "subject": {"reference": f"Patient/{patient_id}"},
        "valueQuantity": {"value": 72, "unit": "/min", "system": "http://unitsofmeasure.org", "code": "/min"},
    }
    put_resource(engine, invalid)
    later = {"resourceType": "Organization", "id": "org-after-invalid", "name": "Sent after the invalid one"}
    put_resource(engine, later)
    _sync(engine, TargetConfig(name="hapi", base_url=hapi_peer.base_url))
    store = SyncStore(engine)
    [dead] = store.status(StatusQuery(target="hapi", status="dead"))
    assert (dead.resource_type, dead.resource_id) == ("Observation", "obs-invalid-1")
    assert dead.last_error and dead.last_error.startswith("HTTP 422") and "status" in dead.last_error
    assert hapi_peer.read("Organization", "org-after-invalid").status_code == 200  # nothing else blocked
    assert store.status_counts("hapi")["hapi"]["sent"] == len(stored_keys(engine)) - 1
    # the fix: a corrected version in the store; replay the dead letter; the worker sends the newest version
    put_resource(engine, {**invalid, "status": "final", "code": {"coding": [{"system": "http://loinc.org", "code": "8867-4"}]}})
    assert store.replay("hapi", ("Observation", "obs-invalid-1")) == 1
    _sync(engine, TargetConfig(name="hapi", base_url=hapi_peer.base_url))
    assert hapi_peer.read("Observation", "obs-invalid-1").json()["status"] == "final"
    assert store.status_counts("hapi")["hapi"]["dead"] == 0


def test_medplum_receives_transactions_within_its_declared_limits(engine, medplum_peer: PeerServer) -> None:
    medplum_peer.reset()
    load_courses(engine, 2, seed=13)
    proxy = RecordingProxy(medplum_peer.base_url, keep_bodies=1000).start()
    try:
        worker = _sync(engine, TargetConfig(name="medplum", base_url=proxy.base_url))
    finally:
        proxy.stop()
    caps = worker.runtimes[0].capabilities()
    limits = medplum_peer.transaction_limits()
    assert caps.transactions and caps.max_transaction_entries == limits["max-transaction-updates"]
    assert proxy.bundles and all(
        len(orjson.loads(b)["entry"]) <= limits["max-transaction-updates"] for b in proxy.bundles
    )
    stored = _stored(engine)
    for resource_type, n in collections.Counter(k[0] for k in stored).items():
        assert medplum_peer.count(resource_type) == n
    for (resource_type, resource_id), ours in list(stored.items())[:150]:
        assert _content(medplum_peer.read(resource_type, resource_id).json()) == _content(ours)


def test_medplum_as_an_id_assigning_target_gets_conditional_updates_once(engine, medplum_peer: PeerServer) -> None:
    medplum_peer.reset()
    load_courses(engine, 1, seed=14)
    target = TargetConfig(name="medplum-ids", base_url=medplum_peer.base_url, id_policy="server")
    _sync(engine, target)
    stored = _stored(engine)
    store = SyncStore(engine)
    id_map = store.id_map("medplum-ids", stored)
    assert len(id_map) == len(stored)
    assert all(their != ours[1] for ours, their in id_map.items())  # the peer chose its own ids
    for (resource_type, resource_id), ours in stored.items():
        found = bundles.business_identifier(ours)
        if found:
            assert medplum_peer.count(resource_type, found) == 1
        theirs = medplum_peer.read(resource_type, id_map[(resource_type, resource_id)]).json()
        for ref in bundles.references(theirs):  # every reference points at the peer's ids
            assert medplum_peer.read(*ref).status_code == 200
    # a second full pass (backfill) and a changed resource: still exactly one of each
    patient_key = next(k for k in stored if k[0] == "Patient")
    patient = stored[patient_key]
    put_resource(engine, {**patient, "name": [{"family": "Changed", "given": ["Name"]}]})
    store.backfill("medplum-ids")
    _sync(engine, target)
    for resource_type, n in collections.Counter(k[0] for k in stored).items():
        assert medplum_peer.count(resource_type) == n
    theirs = medplum_peer.read("Patient", id_map[patient_key]).json()
    assert theirs["name"][0]["family"] == "Changed"
