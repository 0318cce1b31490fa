"""Fixtures of the coverage tests: a store with the demo course and a coverage, a fixed clock,
and the sandbox payer running as a real process on a free port."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.config import Settings
from service.courses import demo_course
from service.usecases import Services, put_record
from tests.served import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2026, 3, 1, 15, 0, tzinfo=dt.timezone.utc)
"""The day before the demo course's first infusion (2026-03-02)."""


class Clock:
    def __init__(self, moment: dt.datetime) -> None:
        self.moment = moment

    def __call__(self) -> dt.datetime:
        return self.moment


def coverage_payload(payer: str = "acme-commercial", key: str = "cov-1", **extra: object) -> dict:
    payer_type = "medicare" if payer.startswith("medicare") else "commercial"
    return {"id": key, "clinic_id": "riverbend", "patient_id": "pt-0001", "payer": payer, "payer_type": payer_type,
            "member_id": "MBR123456", "group_id": "GRP-77", "group_name": "Riverbend Employees", "plan_id": "GOLD",
            "plan_name": "Gold PPO", "period_start": "2026-01-01", **extra}


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def services(database_url: str, clock: Clock) -> Iterator[Services]:
    svc = Services(settings=Settings(database_url=database_url), clock=clock)
    svc.migrate()
    for kind, payload in demo_course():
        put_record(svc.uow(), kind, payload)
    yield svc
    svc.close()


def start_sandbox(pend_rate: float, seed: int = 1) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "service", "payer", "--port", str(port), "--pend-rate", str(pend_rate), "--seed", str(seed)],
        cwd=PROJECT_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    base = line.rsplit(" ", 1)[-1]
    assert base == f"http://127.0.0.1:{port}/fhir", line
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/metadata", timeout=1).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("sandbox payer did not start")


@pytest.fixture(scope="module")
def sandbox_pending() -> Iterator[str]:
    """The sandbox payer answering every PAS request pended (decided on $inquire)."""
    proc, base = start_sandbox(1.0)
    yield base
    proc.terminate()
    proc.wait(10)


@pytest.fixture(scope="module")
def sandbox_direct() -> Iterator[str]:
    """The sandbox payer deciding every PAS request at once."""
    proc, base = start_sandbox(0.0)
    yield base
    proc.terminate()
    proc.wait(10)
