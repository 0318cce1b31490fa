"""Every Bundle the worker sends passes the HL7 validator: a sample of the transaction Bundles
captured at the proxy in front of the Medplum peer, for both target id policies."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import orjson
import pytest

from service.store.sync_repository import SyncStore
from service.sync.targets import TargetConfig
from service.sync.worker import SyncWorker
from tests.peers.fixtures import PeerServer

from .recording_proxy import RecordingProxy
from .support import FAST, load_courses, migrated_engine

SAMPLE = 6


@pytest.mark.parametrize("id_policy", ["client", "server"])
def test_sent_transaction_bundles_pass_the_hl7_validator(
    tmp_path, medplum_peer: PeerServer, assert_fhir_valid: Callable[..., Any], id_policy: str
) -> None:
    medplum_peer.reset()
    engine = migrated_engine(f"sqlite:///{tmp_path / 'store.sqlite3'}")
    load_courses(engine, 1, seed=41)
    proxy = RecordingProxy(medplum_peer.base_url, keep_bodies=10_000).start()
    try:
        worker = SyncWorker(SyncStore(engine), [TargetConfig(name="m", base_url=proxy.base_url, id_policy=id_policy)],
                            dataclasses.replace(FAST, max_bundle_entries=25))
        assert worker.run(until_idle=True, max_seconds=120).fatal is None
    finally:
        proxy.stop()
    sent = [orjson.loads(b) for b in proxy.bundles]
    assert sent and all(b["resourceType"] == "Bundle" and b["type"] == "transaction" for b in sent)
    step = max(1, len(sent) // SAMPLE)
    sample = sent[::step][:SAMPLE]
    types = set()
    for bundle in sample:
        types |= {e["resource"]["resourceType"] for e in bundle["entry"] if "resource" in e}
        assert_fhir_valid(bundle)
    assert len(types) >= 3
    engine.dispose()
