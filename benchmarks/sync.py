"""Sync benchmark: resources per second delivered to the Medplum peer through the whole
pipeline (outbox -> ingest -> claim -> dependency order -> transaction Bundles -> peer ->
outcomes recorded), beside two clients measured in the same run against the same peer:

- ceiling: a bare httpx client POSTing the same prepared transaction Bundles (50 entries, the
  peer's declared limit) with the same concurrency as the worker, nothing else to do;
- naive: one POST per resource, one at a time (what a hand-written sync loop does).

Run: `.venv/bin/python -m benchmarks.sync [--courses N] [--repeats R] [--concurrency C]`;
needs the Medplum peer (scripts/build-peers); writes results/sync.md.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import tempfile
import time
from pathlib import Path

import httpx
import orjson
import sqlalchemy as sa

from service.store.sync_repository import SyncStore
from service.sync import bundles
from service.sync.retry import RetryPolicy
from service.sync.targets import TargetConfig
from service.sync.worker import SyncWorker, WorkerOptions
from tests.peers.fixtures import MEDPLUM_SERVER, start_peer
from tests.sync.support import load_courses, migrated_engine

from .common import write_table

CHUNK = 50


def _stored(engine) -> list[tuple[str, str, bytes, dict]]:  # type: ignore[no-untyped-def]
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT resource_type, id, json FROM fhir_resource ORDER BY resource_type, id"))
        return [(r[0], r[1], bytes(r[2]), orjson.loads(r[2])) for r in rows]


def _prepared_bundles(base_url: str, stored: list[tuple[str, str, bytes, dict]]) -> list[bytes]:
    keys = [(t, i) for t, i, _, _ in stored]
    refs = {(t, i): bundles.references(doc) for t, i, _, doc in stored}
    body = {(t, i): raw for t, i, raw, _ in stored}
    order = bundles.dependency_order(keys, refs, {k: n for n, k in enumerate(keys)})
    return [
        bundles.transaction_bundle(bundles.put_entry(base_url, k, body[k]) for k in chunk)
        for chunk in bundles.chunk(order, CHUNK)
    ]


def run_pipeline(engine, base_url: str, run: int, concurrency: int, max_in_flight: int = 4) -> tuple[int, float]:  # type: ignore[no-untyped-def]
    options = WorkerOptions(
        concurrency=concurrency, batch_items=300, batch_partitions=2, poll_seconds=0.01, defer_seconds=0.05,
        policy=RetryPolicy(base_seconds=0.05, cap_seconds=0.5),
    )
    target = TargetConfig(name=f"bench-{run}", base_url=base_url, max_in_flight=max_in_flight)
    worker = SyncWorker(SyncStore(engine), [target], options)
    start = time.perf_counter()
    report = worker.run(until_idle=True, max_seconds=600)
    elapsed = time.perf_counter() - start
    assert report.fatal is None and report.dead == 0, report
    return report.sent, elapsed


def run_ceiling(base_url: str, prepared: list[bytes], concurrency: int) -> float:
    with httpx.Client(timeout=60.0) as client:
        headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}

        def post(bundle: bytes) -> None:
            client.post(base_url, content=bundle, headers=headers).raise_for_status()

        start = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(post, prepared))
        return time.perf_counter() - start


def run_naive(base_url: str, stored: list[tuple[str, str, bytes, dict]]) -> float:
    with httpx.Client(timeout=60.0) as client:
        headers = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}
        start = time.perf_counter()
        for resource_type, _, raw, _ in stored:
            client.post(f"{base_url}/{resource_type}", content=raw, headers=headers).raise_for_status()
        return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--courses", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=4,
                        help="concurrent requests of the bare client, and the worker's max_in_flight")
    parser.add_argument("--lanes", type=int, default=4, help="worker lanes (the ceiling is also measured at this many)")
    parser.add_argument("--naive-sample", type=int, default=600, help="resources the naive client sends per run")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sync-bench-"))
    peer = start_peer("medplum-peer", ["node", str(MEDPLUM_SERVER), "--port", "0"], work / "medplum.log", 60)
    try:
        engine = migrated_engine(f"sqlite:///{work / 'store.sqlite3'}")
        load_courses(engine, args.courses, seed=51)
        stored = _stored(engine)
        count = len(stored)
        prepared = _prepared_bundles(peer.base_url, stored)
        pipeline, ceiling, naive = [], [], []
        for run in range(args.repeats):
            peer.reset()
            sent, elapsed = run_pipeline(engine, peer.base_url, run, args.lanes, args.concurrency)
            assert sent == count, (sent, count)
            pipeline.append(count / elapsed)
            peer.reset()
            for concurrency in sorted({args.concurrency, args.lanes}):  # the ceiling at its best concurrency
                peer.reset()
                ceiling.append(count / run_ceiling(peer.base_url, prepared, concurrency))
            peer.reset()
            sample = stored[: args.naive_sample]
            naive.append(len(sample) / run_naive(peer.base_url, sample))
        best = {"pipeline": max(pipeline), "ceiling": max(ceiling), "naive": max(naive)}
        rows = [
            ["worker pipeline (outbox -> worker -> peer)", f"{best['pipeline']:,.0f}",
             f"{best['pipeline'] / best['ceiling']:.0%}", f"{best['pipeline'] / best['naive']:.1f}x"],
            ["ceiling: bare client, same prepared Bundles", f"{best['ceiling']:,.0f}", "100%",
             f"{best['ceiling'] / best['naive']:.1f}x"],
            ["naive: one POST per resource", f"{best['naive']:,.0f}", f"{best['naive'] / best['ceiling']:.0%}", "1.0x"],
        ]
        notes = [
            f"{count} resources from {args.courses} generated courses (SQLite store), Medplum peer "
            f"(in-memory, node) on the same machine; best of {args.repeats} runs each.",
            f"Pipeline and ceiling both send transaction Bundles of {CHUNK} PUTs (the peer's declared limit). The "
            f"ceiling is the best of {sorted({args.concurrency, args.lanes})} concurrent requests; the pipeline runs "
            f"{args.lanes} lanes sharing at most {args.concurrency} requests in flight (max_in_flight; partitions' "
            "chunks go concurrently, each partition's in order, after the chunks they refer to) and also takes "
            "the outbox into delivery rows, claims partitions with leases, orders by references and records every "
            "outcome.",
            f"Naive: {args.naive_sample} resources, one POST each, sequential (server-assigned ids: not idempotent).",
            "Targets: >= 80 % of the ceiling: "
            f"{'met' if best['pipeline'] >= 0.8 * best['ceiling'] else 'NOT met'}; >= 10x naive: "
            f"{'met' if best['pipeline'] >= 10 * best['naive'] else 'NOT met'}. On this machine the worker (one "
            "Python process: SQL bookkeeping per resource) and the peer (one node process) share the cores, and the "
            "in-memory peer spends almost as much per resource inside a Bundle as for a lone POST on loopback "
            "(the ceiling itself is only ~3x naive), so 10x naive is out of reach against this peer; a real EHR "
            "over a network, where each request costs a round trip and a commit, is where Bundles pay.",
            "Run: .venv/bin/python -m benchmarks.sync",
        ]
        path = write_table("sync", "Sync throughput to the Medplum peer (resources/s)",
                           ["client", "resources/s", "of ceiling", "vs naive"], rows, notes)
        print(path.read_text())
    finally:
        peer.stop()


if __name__ == "__main__":
    main()
