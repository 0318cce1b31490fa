"""`python -m service serve --workers N`: N worker processes share the port and the database
(here the embedded SQLite file); concurrent writes through them all land, once each; the option
refuses to combine with --reload."""

from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests import factories as f
from tests.served import PROJECT, free_port, serving
from tests.tokens import bearer

SETUP = ("clinics", "practitioners", "locations", "patients", "enrollments")


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(stat[1]) == pid:
                found.append(int(entry.name))
    return found


def test_two_workers_share_the_port_and_the_database(tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'w.sqlite3'}", "LOG_LEVEL": "WARNING",
           "RATE_LIMIT_PER_MINUTE": "0"}
    log = tmp_path / "serve.log"
    with serving(env, log, "--workers", "2", ready=lambda process: len(_children(process.pid)) >= 2) as (base, _):
        headers = bearer()
        with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
            for kind in SETUP:
                assert client.put(f"/api/v1/{kind}/{f.FACTORIES[kind]()['id']}", json=f.FACTORIES[kind]()).status_code == 201
            session = f.FACTORIES["administration-sessions"]()

            def write(i: int) -> int:
                body = {**session, "id": f"sess-w{i:03d}"}
                with httpx.Client(base_url=base, headers=headers, timeout=60) as own:  # a connection each: both workers serve
                    return own.put(f"/api/v1/administration-sessions/{body['id']}", json=body).status_code

            with ThreadPoolExecutor(8) as pool:
                statuses = list(pool.map(write, range(40)))
            assert statuses == [201] * 40
            listed = client.get("/api/v1/administration-sessions", params={"clinic_id": session["clinic_id"], "limit": 500}).json()
            keys = [item["record"]["id"] for item in listed["items"]]
            assert sorted(k for k in keys if k.startswith("sess-w")) == [f"sess-w{i:03d}" for i in range(40)]
    assert "Traceback" not in log.read_text(), log.read_text()


def test_workers_and_reload_do_not_combine() -> None:
    done = subprocess.run([sys.executable, "-m", "service", "serve", "--reload", "--workers", "2", "--port", str(free_port())],
                          cwd=PROJECT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "--reload runs one process" in done.stderr
