"""A/B of the session write through the domain API: this checkout against another commit.

Both are served side by side (uvicorn, one worker each) on one throwaway PostgreSQL, and the
rounds alternate (A, B, B, A, A, B, ...), so a slow spell of this shared machine hits both
sides; the verdict is the median of the rounds' B/A rate ratios, with CPU per write of each
server, of PostgreSQL during its rounds, and of the client. Single runs of identical code
swing by ±15 % here (docs/decisions/0011); only interleaved ratios say whether a change helps.

Run: `.venv/bin/python -m benchmarks.api_ab --baseline <git ref> [--requests N] [--rounds R]`;
the baseline is checked out in a temporary git worktree (removed afterwards) and migrated with
this checkout's migrations; writes results/api_ab.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .api_session import (
    ROOT, CpuMeter, admin_headers, analyze, drive, free_port, load_demo_setup, postgres_pids, session_bodies,
    start_server, url_dir, with_children,
)
from .common import median, write_table

APP = "service.api.app:create_app"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baseline", required=True, help="git ref served as A (this checkout is B)")
    parser.add_argument("--requests", type=int, default=3200, help="session writes per side")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    commit = subprocess.run(["git", "rev-parse", "--short", args.baseline], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.strip()
    worktree = Path(tempfile.mkdtemp(prefix="api-ab-")) / "baseline"
    subprocess.run(["git", "worktree", "add", "--detach", "-q", str(worktree), commit], cwd=ROOT, check=True)
    url = subprocess.run([str(ROOT / "scripts/pg-throwaway"), "start"], capture_output=True, text=True,
                         check=True).stdout.strip().splitlines()[-1]
    # one key pair for both sides: the baseline's own would be under its worktree
    env = {**os.environ, "DATABASE_URL": url, "RATE_LIMIT_PER_MINUTE": "0",
           "AUTH_DEV_KEY_DIR": str(ROOT / ".local" / "dev-keys")}
    procs = []
    try:
        subprocess.run([sys.executable, "-m", "service", "migrate"], cwd=ROOT, env=env, check=True, capture_output=True)
        ports = free_port(), free_port()
        procs = [start_server(APP, ports[0], env, root=worktree), start_server(APP, ports[1], env)]
        headers = admin_headers(env)
        load_demo_setup(ports[1], headers)
        bodies = iter(session_bodies(2 * (args.requests + 100), prefix="ab-session"))
        urls = [lambda b, p=port: f"http://127.0.0.1:{p}/api/v1/administration-sessions/{b['id']}" for port in ports]
        for url_for in urls:  # warm-up
            asyncio.run(drive(url_for, [next(bodies) for _ in range(100)], args.concurrency, headers))
        analyze(url)
        cluster = url_dir(url)
        meters = [CpuMeter(lambda pid=proc.pid: with_children(pid), lambda: postgres_pids(cluster)) for proc in procs]
        rates: list[list[float]] = [[], []]
        size = args.requests // args.rounds
        for index in range(args.rounds):
            for side in ((0, 1) if index % 2 == 0 else (1, 0)):
                with meters[side]:
                    rate, _, errors = asyncio.run(drive(urls[side], [next(bodies) for _ in range(size)], args.concurrency, headers))
                if errors:
                    raise RuntimeError(f"{errors} failed requests on side {'AB'[side]}")
                rates[side].append(rate)
        for meter in meters:
            meter.stop(size * args.rounds)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        subprocess.run([str(ROOT / "scripts/pg-throwaway"), "stop", url_dir(url)], capture_output=True)
        subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=ROOT, capture_output=True)
    ratios = [b / a for a, b in zip(*rates)]
    rows = [
        [f"A: {commit} ({args.baseline})", f"{median(rates[0]):,.0f}", "1.00x", *meters[0].cells()],
        ["B: this checkout", f"{median(rates[1]):,.0f}", f"{median(ratios):.2f}x", *meters[1].cells()],
    ]
    path = write_table(
        "api_ab",
        "A/B: session writes through the domain API",
        ["side", "requests/s (median round)", "B/A (median of rounds)", "CPU ms/write: server", "PostgreSQL", "client"],
        rows,
        [
            f"{size * args.rounds} session PUTs per side after 100 warm-up each, in {args.rounds} alternating rounds; "
            f"the rounds' B/A ratios: {', '.join(f'{r:.2f}' for r in ratios)}",
            f"concurrency {args.concurrency}; one uvicorn worker per side; one PostgreSQL, analysed after the warm-up; "
            "PostgreSQL's CPU is counted in each side's own rounds",
        ],
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
