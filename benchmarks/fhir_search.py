"""FHIR search / $everything / read / bulk $export on PostgreSQL with >= 1 million resources
generated from the domain model (benchmarks/fhir_load.py: generated courses mapped with
map_record and written through the store's batched write path).

Measured in the same run:
- load rate (resources/s, 2 worker processes), then ANALYZE;
- server-side latency p50/p95 (in-process calls of the FHIR use cases, the code a request
  runs minus HTTP) and over HTTP (uvicorn, one process, sequential requests) of
  `Observation?patient=..&code=..&date=ge..` (random patients, BP panel 85354-9 or PHQ-9 total
  44261-6, random thresholds), `Patient/{id}/$everything`, and the floor: a read by id;
- bulk `$export`: resources/s and peak RSS of a fresh process exporting 2 sizes (Observation
  only, everything), and the server's RSS high-water mark across 2 exports over HTTP.

Run: `.venv/bin/python -m benchmarks.fhir_search [--courses 3800]` (NOT part of the test
suite: ~10 minutes); writes results/fhir_search.md. `--url` reuses a loaded database.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import httpx
import psycopg

from service.config import Settings
from service.usecases import Services
from service.usecases.fhir_read import read, read_uow
from service.usecases.fhir_search import everything, search

from .api_session import free_port, start_server
from .common import percentile, write_table
from .fhir_load import load_courses

ROOT = Path(__file__).resolve().parents[1]
CODES = ("http://loinc.org|85354-9", "http://loinc.org|44261-6")
BASE = "http://bench/fhir"


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def start_postgres() -> tuple[str, str]:
    run = subprocess.run([str(ROOT / "scripts/pg-throwaway"), "start"], capture_output=True, text=True, check=True)
    url = run.stdout.strip().splitlines()[-1]
    directory = next(line.split("cluster dir: ")[1].split(" ")[0] for line in run.stderr.splitlines() if "cluster dir:" in line)
    return url, directory


def create_database(server_url: str, name: str) -> str:
    with psycopg.connect(libpq(server_url), autocommit=True) as connection:
        connection.execute(f"DROP DATABASE IF EXISTS {name}")
        connection.execute(f"CREATE DATABASE {name}")
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def timed(samples: list[Callable[[], Any]]) -> list[float]:
    out = []
    for call in samples:
        start = time.perf_counter()
        call()
        out.append(time.perf_counter() - start)
    return out


def ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q) * 1000:.2f}"


def search_params(rng: random.Random, patient: str) -> list[tuple[str, str]]:
    month, day = rng.randint(1, 8), rng.randint(1, 28)
    return [("patient", patient), ("code", rng.choice(CODES)), ("date", f"ge2026-{month:02d}-{day:02d}")]


def export_child(url: str, since: Any, directory: str, queue: Any) -> None:
    """In a fresh process: export, then report (count, seconds, RSS before, peak RSS)."""
    import datetime as dt

    from service.store import make_engine
    from service.store.fhir_export import ExportJobStore
    from service.usecases.fhir_export import ExportParameters, write_ndjson
    from service.usecases.fhir_types import READ_TYPES

    engine = make_engine(url)
    store = ExportJobStore(engine, lambda: dt.datetime.now(dt.timezone.utc))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    result = write_ndjson(store, ExportParameters("system", READ_TYPES, since), Path(directory), clinic_id=None,
                          clock=lambda: dt.datetime.now(dt.timezone.utc))
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    size = sum(p.stat().st_size for p in Path(directory).iterdir())
    queue.put((sum(result.counts.values()), seconds, before, peak, size))


def export_in_fresh_process(url: str, since: Any) -> tuple[int, float, int, int, int]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    with tempfile.TemporaryDirectory() as directory:
        process = context.Process(target=export_child, args=(url, since, directory, queue))
        process.start()
        result = queue.get(timeout=1800)
        process.join()
    return result


def vm_hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def http_export(client: httpx.Client, params: dict) -> tuple[int, float]:
    start = time.perf_counter()
    kicked = client.get("/fhir/$export", params=params, headers={"Prefer": "respond-async"})
    kicked.raise_for_status()
    status_url = kicked.headers["content-location"]
    while True:
        response = client.get(status_url)
        if response.status_code == 200:
            break
        assert response.status_code == 202, response.text
        time.sleep(0.2)
    seconds = time.perf_counter() - start
    manifest = response.json()
    client.delete(status_url)
    return sum(o["count"] for o in manifest["output"]), seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--courses", type=int, default=3800)
    parser.add_argument("--samples", type=int, default=400)
    parser.add_argument("--http-samples", type=int, default=300)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--url", help="an already loaded database (skips starting PostgreSQL and loading)")
    parser.add_argument("--keep", action="store_true", help="leave the throwaway PostgreSQL running")
    parser.add_argument("--load-note", default="database loaded by an earlier run", help="with --url: how it was loaded")
    args = parser.parse_args()
    notes: list[str] = []
    cluster = None
    procs: list[subprocess.Popen] = []
    try:
        if args.url:
            url, load_note = args.url, args.load_note
        else:
            server, cluster = start_postgres()
            url = create_database(server, "bench")
            Services(settings=Settings(database_url=url)).migrate()
            written, seconds = load_courses(url, args.courses, workers=args.workers)
            load_note = f"loaded {written:,} resource versions from {args.courses:,} generated courses in {seconds:.0f} s = {written / seconds:,.0f} resources/s ({args.workers} worker processes + PostgreSQL on {os.cpu_count()} cores)"
            print(load_note, flush=True)
        with psycopg.connect(libpq(url), autocommit=True) as connection:
            start = time.perf_counter()
            connection.execute("ANALYZE")
            analyze = time.perf_counter() - start
            total = connection.execute("SELECT count(*) FROM fhir_resource").fetchone()[0]
            tokens = connection.execute("SELECT count(*) FROM fhir_search_token").fetchone()[0]
            shared_buffers = connection.execute("SHOW shared_buffers").fetchone()[0]
            db_size = connection.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()[0]
            patients = [r[0] for r in connection.execute("SELECT id FROM fhir_resource WHERE resource_type = 'Patient'")]
            observations = [r[0] for r in connection.execute(
                "SELECT id FROM fhir_resource WHERE resource_type = 'Observation' ORDER BY random() LIMIT 2000")]
            median = connection.execute("SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY last_updated) FROM fhir_resource").fetchone()[0]
            rng = random.Random(5)
            explain_params = search_params(rng, rng.choice(patients))
        notes.append(load_note + f"; ANALYZE {analyze:.1f} s")
        notes.append(f"{total:,} current resources, {tokens:,} search tokens, {len(patients):,} patients; database {db_size}; shared_buffers {shared_buffers}")

        services = Services(settings=Settings(database_url=url))
        rng = random.Random(11)
        search_calls = [
            (lambda p=search_params(rng, rng.choice(patients)): search(read_uow(services), "Observation", p, base=BASE))
            for _ in range(args.samples)
        ]
        everything_calls = [
            (lambda p=rng.choice(patients): everything(read_uow(services), p, [], base=BASE)) for _ in range(args.samples)
        ]
        read_calls = [(lambda o=rng.choice(observations): read(read_uow(services), "Observation", o)) for _ in range(args.samples)]
        for warm in (search_calls[:30], everything_calls[:30], read_calls[:30]):
            timed(warm)
        inproc = {
            "search": timed(search_calls), "everything": timed(everything_calls), "read": timed(read_calls),
        }
        sample = search(read_uow(services), "Observation", explain_params, base=BASE)
        notes.append(f"search example {explain_params}: {len(sample.entries)} matches (with total); "
                     f"$everything returns the first page (_count 50) of ~{total // len(patients)} resources per patient")
        plan = explain(services, explain_params)
        notes.append("search plan (EXPLAIN ANALYZE): " + plan)
        services.close()

        port = free_port()
        env = {**os.environ, "DATABASE_URL": url, "AUTH_MODE": "disabled", "RATE_LIMIT_PER_MINUTE": "0", "EXPORT_DIR": tempfile.mkdtemp(prefix="bench-export-")}
        server_proc = start_server("service.api.app:create_app", port, env)
        procs.append(server_proc)
        http: dict[str, list[float]] = {}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Accept": "application/fhir+json"}, timeout=600) as client:
            def get(path: str, params: Any = None) -> Callable[[], Any]:
                def call() -> None:
                    client.get(path, params=params).raise_for_status()
                return call

            hs = [get("/fhir/Observation", search_params(rng, rng.choice(patients))) for _ in range(args.http_samples)]
            he = [get(f"/fhir/Patient/{rng.choice(patients)}/$everything") for _ in range(args.http_samples)]
            hr = [get(f"/fhir/Observation/{rng.choice(observations)}") for _ in range(args.http_samples)]
            for warm in (hs[:20], he[:20], hr[:20]):
                timed(warm)
            http = {"search": timed(hs), "everything": timed(he), "read": timed(hr)}
            rss_start = vm_hwm(server_proc.pid)
            small_http = http_export(client, {"_since": median.isoformat()})
            rss_small = vm_hwm(server_proc.pid)
            big_http = http_export(client, {})
            rss_big = vm_hwm(server_proc.pid)

        small = export_in_fresh_process(url, median)
        big = export_in_fresh_process(url, None)
        rows = [
            ["search Observation?patient&code&date=ge", ms(inproc["search"], 50), ms(inproc["search"], 95), ms(http["search"], 50), ms(http["search"], 95)],
            ["Patient/{id}/$everything (first page)", ms(inproc["everything"], 50), ms(inproc["everything"], 95), ms(http["everything"], 50), ms(http["everything"], 95)],
            ["read Observation/{id} (floor)", ms(inproc["read"], 50), ms(inproc["read"], 95), ms(http["read"], 50), ms(http["read"], 95)],
        ]
        for label, (count, seconds, before, peak, size) in ((f"$export all types _since={median.isoformat(timespec='seconds')}", small), ("$export all types", big)):
            rows.append([
                f"{label}: {count:,} resources, {size / 1e6:,.0f} MB NDJSON",
                f"{count / seconds:,.0f} resources/s", f"{seconds:.1f} s",
                f"peak RSS {peak / 1024:,.0f} MiB", f"(+{(peak - before) / 1024:,.0f} MiB over the process at start)",
            ])
        notes.append(
            f"$export over HTTP (kick-off to manifest, runner thread in the uvicorn process): half (_since) {small_http[0]:,} in {small_http[1]:.1f} s "
            f"= {small_http[0] / small_http[1]:,.0f}/s, all {big_http[0]:,} in {big_http[1]:.1f} s = {big_http[0] / big_http[1]:,.0f}/s; "
            f"server RSS high-water mark {rss_start / 1024:,.0f} MiB before, {rss_small / 1024:,.0f} MiB after the small export, "
            f"{rss_big / 1024:,.0f} MiB after the big one"
        )
        notes.append(f"{args.samples} in-process samples and {args.http_samples} HTTP samples per row (sequential, after warm-up), random patients / ids / thresholds; "
                     "in-process = the FHIR use case called directly (parse, SQL, Bundle bytes), HTTP adds uvicorn + FastAPI + client")
        notes.append("targets: search p95 < 15 ms server-side; $export >= 50,000 resources/s with memory flat in the export size")
        notes.append("run: .venv/bin/python -m benchmarks.fhir_search")
        path = write_table(
            "fhir_search", f"FHIR search, $everything, read and bulk $export at {total:,} resources (PostgreSQL)",
            ["what", "in-process p50 ms", "in-process p95 ms", "HTTP p50 ms", "HTTP p95 ms"], rows, notes,
        )
        print(path.read_text())
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        if cluster and not args.keep:
            subprocess.run([str(ROOT / "scripts/pg-throwaway"), "stop", cluster], capture_output=True)
        elif cluster:
            print(f"PostgreSQL left running: {cluster} ({url})")


def explain(services: Services, params: list[tuple[str, str]]) -> str:
    """The plan of the search's page query: index names used and the execution time."""
    import re

    from service.usecases.fhir_search import parse_search

    parsed = parse_search("Observation", params)
    with read_uow(services) as uow:
        statement = uow.search.statement(parsed.spec, limit=51)
        compiled = statement.compile(dialect=services.engine.dialect, compile_kwargs={"literal_binds": True})
    with psycopg.connect(libpq(services.settings.database_url), autocommit=True) as connection:
        lines = [r[0] for r in connection.execute("EXPLAIN (ANALYZE, BUFFERS) " + str(compiled))]
    indexes = sorted(set(re.findall(r"using (\w+)", " ".join(lines), flags=re.I)))
    scans = sorted(set(re.findall(r"(Seq Scan|Index Only Scan|Index Scan|Bitmap Heap Scan)", " ".join(lines))))
    timing = next((line.strip() for line in lines if line.strip().startswith("Execution Time")), "")
    return f"{', '.join(scans)} using {', '.join(indexes)}; {timing}"


if __name__ == "__main__":
    sys.exit(main())
