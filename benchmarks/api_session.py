"""API benchmark: documenting one infusion session through the domain API (PostgreSQL,
uvicorn; each request validates, maps and stores the session's resources with their outbox
rows in one transaction) in requests per second and p99 latency, beside a bare FastAPI JSON
echo endpoint served the same way in the same run.

Run: `.venv/bin/python -m benchmarks.api_session [--requests N] [--concurrency C]`; starts a
throwaway PostgreSQL (scripts/pg-throwaway) and two uvicorn servers; writes results/api_session.md.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import httpx

from service.courses import DEMO_PATIENT, clinic_payloads, course_payloads

from .common import median, percentile, write_table

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(app: str, port: int, env: dict, workers: int = 1, root: Path = ROOT) -> subprocess.Popen:
    """uvicorn serving `app` (a factory) from the checkout at `root`, once it answers."""
    cmd = [sys.executable, "-m", "uvicorn", app, "--factory", "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning", "--no-access-log", "--workers", str(workers)]
    proc = subprocess.Popen(cmd, cwd=root, env=env)
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{app} did not start")


async def drive(url_for, bodies: list[dict], concurrency: int, headers: dict | None = None) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while not queue.empty():
            body = queue.get_nowait()
            start = time.perf_counter()
            response = await client.put(url_for(body), json=body)
            latencies.append(time.perf_counter() - start)
            if response.status_code >= 300:
                errors += 1

    async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_connections=concurrency), headers=headers) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return len(bodies) / elapsed, latencies, errors


def admin_headers(env: dict) -> dict[str, str]:
    """A dev-mode admin bearer token (RS384, verified by the server like any other)."""
    token = subprocess.run(
        [sys.executable, "-m", "service", "dev-token", "--scope", "system/*.cruds", "--role", "admin"],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True,
    ).stdout.strip().splitlines()[-1]
    return {"Authorization": f"Bearer {token}"}


def load_demo_setup(port: int, headers: dict[str, str]) -> None:
    """The demo clinic, its staff, patient and enrollment: what a session write refers to."""
    setup = clinic_payloads() + course_payloads(DEMO_PATIENT)[:2]
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
        for kind, payload in setup:
            client.put(f"/api/v1/{kind}/{payload['id']}", json=payload).raise_for_status()


def session_bodies(count: int, prefix: str = "bench-session") -> list[dict]:
    """`count` copies of the demo's infusion session, each with its own id."""
    template = next(p for k, p in course_payloads(DEMO_PATIENT) if k == "administration-sessions")
    bodies = []
    for index in range(count):
        body = copy.deepcopy(template)
        body["id"] = f"{prefix}-{index:06d}"
        bodies.append(body)
    return bodies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes of each server")
    parser.add_argument("--rounds", type=int, default=4, help="interleaved session/echo rounds the requests are split into")
    args = parser.parse_args()
    pg_dir = subprocess.run([str(ROOT / "scripts/pg-throwaway"), "start"], capture_output=True, text=True, check=True)
    url = pg_dir.stdout.strip().splitlines()[-1]
    # real authentication (dev-mode tokens, RS384 verified per request); no rate limit
    env = {**os.environ, "DATABASE_URL": url, "RATE_LIMIT_PER_MINUTE": "0"}
    procs = []
    try:
        subprocess.run([sys.executable, "-m", "service", "migrate"], cwd=ROOT, env=env, check=True, capture_output=True)
        api_port, echo_port = free_port(), free_port()
        procs.append(start_server("service.api.app:create_app", api_port, env, args.workers))
        procs.append(start_server("benchmarks.echo_app:create_app", echo_port, env, args.workers))
        headers = admin_headers(env)
        load_demo_setup(api_port, headers)
        bodies = session_bodies(args.requests + 100)
        warm, measured = bodies[:100], bodies[100:]
        api_url = lambda b: f"http://127.0.0.1:{api_port}/api/v1/administration-sessions/{b['id']}"  # noqa: E731
        echo_url = lambda b: f"http://127.0.0.1:{echo_port}/echo/{b['id']}"  # noqa: E731
        asyncio.run(drive(api_url, warm, args.concurrency, headers))
        asyncio.run(drive(echo_url, warm, args.concurrency, headers))
        analyze(url)
        # interleaved rounds (session, echo, session, echo, ...): a slow spell of this shared
        # machine then hits both sides of a round, and the ratio is the median round's
        cluster = url_dir(url)
        api_cpu = CpuMeter(lambda: with_children(procs[0].pid), lambda: postgres_pids(cluster))
        echo_cpu = CpuMeter(lambda: with_children(procs[1].pid), None)
        api_lat, echo_lat, api_err, echo_err, api_rates, echo_rates = [], [], 0, 0, [], []
        size = len(measured) // args.rounds
        for index in range(args.rounds):
            chunk = measured[index * size:(index + 1) * size]
            with api_cpu:
                rate, latencies, errors = asyncio.run(drive(api_url, chunk, args.concurrency, headers))
            api_rates.append(rate)
            api_lat += latencies
            api_err += errors
            with echo_cpu:
                rate, latencies, errors = asyncio.run(drive(echo_url, chunk, args.concurrency, headers))
            echo_rates.append(rate)
            echo_lat += latencies
            echo_err += errors
        api_cpu.stop(size * args.rounds)
        echo_cpu.stop(size * args.rounds)
        ratios = [a / e for a, e in zip(api_rates, echo_rates)]
        api_rate, echo_rate, ratio = median(api_rates), median(echo_rates), median(ratios)
        with httpx.Client(headers=headers) as client:
            resources = len(client.get(api_url(measured[0]), params={"clinic_id": "riverbend"}).json()["fhir"])
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        subprocess.run([str(ROOT / "scripts/pg-throwaway"), "stop", url_dir(url)], capture_output=True)
    rows = [
        ["PUT administration session (domain API -> FHIR -> PostgreSQL + outbox)", f"{api_rate:,.0f}",
         f"{percentile(api_lat, 50) * 1000:.1f}", f"{percentile(api_lat, 99) * 1000:.1f}", f"{ratio:.2f}x", str(api_err),
         *api_cpu.cells()],
        ["bare FastAPI JSON echo (baseline)", f"{echo_rate:,.0f}", f"{percentile(echo_lat, 50) * 1000:.1f}",
         f"{percentile(echo_lat, 99) * 1000:.1f}", "1.00x", str(echo_err), *echo_cpu.cells()],
    ]
    path = write_table(
        "api_session",
        "API benchmark: documenting an infusion session",
        ["endpoint", "requests/s", "p50 ms", "p99 ms", "vs echo", "errors", "CPU ms/request: server", "PostgreSQL", "client"],
        rows,
        [
            f"{args.requests} requests after 100 warm-up, in {args.rounds} interleaved rounds (session, echo, session, echo, ...); "
            "requests/s is the median round's, vs echo the median of the rounds' ratios "
            f"({', '.join(f'{r:.2f}' for r in ratios)}); "
            f"concurrency {args.concurrency}, {args.workers} uvicorn worker process(es) each "
            "(uvloop + httptools), "
            "client in the same machine (2 cores shared); the API requests carry a dev-mode bearer token (RS384; its "
            "signature verified once, its claims re-checked on every request from the verified-token cache, as in "
            "production) and are audited",
            f"each session write stores {resources} FHIR resources (Encounter, body weight, Medication, "
            "MedicationAdministration x2, Procedure, discharge Observation, Provenance) + outbox rows in one transaction",
            "CPU ms/request: CPU time (user + system) each process used during the measured requests, divided by "
            "their number; the client is this benchmark process (httpx, asyncio). The machine's budget is 2 cores.",
            "PostgreSQL statistics are refreshed (ANALYZE) after the warm-up, as autovacuum keeps them in a running database",
            "target: >= 0.35x the echo rate. CPU budget at the target: "
            f"{budget_note(api_cpu, echo_rate)}",
        ],
    )
    print(path.read_text())


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a live process (Linux /proc), 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU time of the server process(es), of PostgreSQL's processes and of this process, summed
    over the phases measured (`with meter:` around each). The process lists are taken again at
    each phase's start and end, so a backend or worker started during a phase is counted too."""

    def __init__(self, server_pids: Callable[[], list[int]], pg_pids: Callable[[], list[int]] | None) -> None:
        self.server_pids, self.pg_pids = server_pids, pg_pids
        self.used = (0.0, 0.0, 0.0)
        self.per_request: tuple[float, float, float] | None = None

    def _snapshot(self) -> tuple[dict[int, float], dict[int, float], float]:
        pg = {p: _cpu_seconds(p) for p in self.pg_pids()} if self.pg_pids else {}
        return {p: _cpu_seconds(p) for p in self.server_pids()}, pg, time.process_time()

    def __enter__(self) -> "CpuMeter":
        self._start = self._snapshot()
        return self

    def __exit__(self, *_: object) -> None:
        end = self._snapshot()
        server = sum(t - self._start[0].get(p, 0.0) for p, t in end[0].items())
        pg = sum(t - self._start[1].get(p, 0.0) for p, t in end[1].items())
        self.used = (self.used[0] + server, self.used[1] + pg, self.used[2] + end[2] - self._start[2])

    def stop(self, requests: int) -> None:
        self.per_request = tuple(u * 1000 / requests for u in self.used)  # type: ignore[assignment]

    def cells(self) -> list[str]:
        assert self.per_request is not None
        server, pg, client = self.per_request
        return [f"{server:.2f}", f"{pg:.2f}" if self.pg_pids else "-", f"{client:.2f}"]


def budget_note(api_cpu: CpuMeter, echo_rate: float) -> str:
    """What 0.35x of the echo rate would leave per request on this machine's cores, beside what a
    session write used."""
    assert api_cpu.per_request is not None
    target_rate = 0.35 * echo_rate
    available = (os.cpu_count() or 1) * 1000 / target_rate
    used = sum(api_cpu.per_request)
    return (f"{target_rate:,.0f} requests/s on {os.cpu_count()} cores allow at most {available:.2f} ms of CPU per request "
            f"for server, PostgreSQL and client together; a session write used {used:.2f} ms")


def with_children(pid: int) -> list[int]:
    """A server process and its worker processes (uvicorn --workers N runs them as children;
    their CPU time reaches the parent only when they exit)."""
    children = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout.split()
    return [pid, *(int(c) for c in children)]


def postgres_pids(directory: str) -> list[int]:
    """The postmaster of the throwaway cluster in `directory` and its children (backends, writers)."""
    try:
        postmaster = int(Path(directory, "data", "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    return with_children(postmaster)


def analyze(url: str) -> None:
    """Planner statistics, as autovacuum keeps them in a running database (it would not get to
    a database this young within the run)."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True) as connection:
        connection.execute("ANALYZE")


def url_dir(url: str) -> str:
    out = subprocess.run(["bash", "-c", "ls -d /tmp/ketamine-pg.* 2>/dev/null"], capture_output=True, text=True).stdout.split()
    for candidate in out:
        probe = subprocess.run([str(ROOT / "scripts/pg-throwaway"), "url", candidate], capture_output=True, text=True)
        if probe.stdout.strip() == url:
            return candidate
    return ""


if __name__ == "__main__":
    main()
