"""Fixtures of the billing-page tests: a real service process (uvicorn on a free port, a temp
SQLite store with the demo course and coverages, a movable clock), the sandbox payer as a real
process answering every PAS request pended, and a real headless Chromium driven by Playwright.

Browser: Debian's `chromium` (`/usr/bin/chromium`, or `CHROMIUM`), launched by Playwright with
`executable_path` (Playwright's own browser download is never used). Without it the browser tests
skip, unless REQUIRE_BROWSER is set (scripts/test installs chromium and sets it): then they fail,
so a missing browser is never silent.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest

from service.config import Settings
from service.courses import DEMO_PATIENT, course_payloads, demo_course
from service.usecases import Services, put_record
from tests.coverage.conftest import coverage_payload, start_sandbox
from tests.served import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]
REPORTS = PROJECT_ROOT / "reports"
CLINIC = "riverbend"
START = dt.datetime(2026, 3, 1, 15, 0, tzinfo=dt.timezone.utc)
"""The day before the demo course's first infusion: the pre-check is ready, nothing is used yet."""
LATE = dt.datetime(2026, 3, 20, 15, 0, tzinfo=dt.timezone.utc)
"""After the demo course's six infusions: the authorization is used up (renewal warning)."""

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
_FALSE_WORDS = {"", "0", "false", "no", "off"}

# Second patient (Medicare-like payer: IV ketamine is off-label, denied) and a patient whose name
# is markup (it must show as text).
MEDICARE_PATIENT = replace(DEMO_PATIENT, patient_key="pt-0002", family_name="Okafor", given_name="Sam")
HOSTILE_NAME = '<img src=x onerror="window.__xss=1">'
HOSTILE_PATIENT = replace(DEMO_PATIENT, patient_key="pt-0003", family_name=HOSTILE_NAME, given_name="Eve")


def browser_required() -> bool:
    return os.environ.get("REQUIRE_BROWSER", "").strip().lower() not in _FALSE_WORDS


def chromium_path() -> str | None:
    wanted = os.environ.get("CHROMIUM") or "/usr/bin/chromium"
    return wanted if os.path.isfile(wanted) and os.access(wanted, os.X_OK) else shutil.which("chromium")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@dataclass
class BillingServer:
    base_url: str
    payer_url: str
    clock_file: Path

    def set_clock(self, moment: dt.datetime) -> None:
        self.clock_file.write_text(moment.isoformat(), encoding="utf-8")

    def page_url(self, clinic: str = CLINIC) -> str:
        return f"{self.base_url}/billing?clinic_id={clinic}"


def load_store(database_url: str) -> None:
    """The demo course (pt-0001, commercial coverage), a Medicare patient and a patient named
    with markup, each with an active coverage and no prior-authorization request."""
    services = Services(settings=Settings(database_url=database_url), clock=lambda: START)
    try:
        services.migrate()
        for kind, payload in demo_course():
            put_record(services.uow(), kind, payload)
        for spec in (MEDICARE_PATIENT, HOSTILE_PATIENT):
            for kind, payload in course_payloads(spec):
                if kind not in ("clinics", "practitioners", "locations"):
                    put_record(services.uow(), kind, payload)
        put_record(services.uow(), "coverages", coverage_payload())
        put_record(services.uow(), "coverages", {**coverage_payload("medicare-demo", key="cov-mcr"), "patient_id": "pt-0002"})
        put_record(services.uow(), "coverages", {**coverage_payload(key="cov-eve"), "patient_id": "pt-0003"})
    finally:
        services.close()


@pytest.fixture(scope="module")
def billing_server() -> Iterator[BillingServer]:
    """The service as a real uvicorn process against the sandbox payer (pend rate 1.0)."""
    with tempfile.TemporaryDirectory(prefix="billing-web-") as tmp:
        database_url = f"sqlite:///{Path(tmp) / 'store.sqlite3'}"
        load_store(database_url)
        clock_file = Path(tmp) / "clock"
        clock_file.write_text(START.isoformat(), encoding="utf-8")
        payer, payer_url = start_sandbox(1.0)
        port = free_port()
        env = {**os.environ, "DATABASE_URL": database_url, "PAYER_ACME_COMMERCIAL_URL": payer_url,
               "PAYER_MEDICARE_DEMO_URL": payer_url, "LOG_LEVEL": "WARNING"}
        log = open(Path(tmp) / "server.log", "w+", encoding="utf-8")
        server = subprocess.Popen(
            [sys.executable, "-m", "tests.web.server", "--port", str(port), "--database-url", database_url,
             "--clock-file", str(clock_file)],
            cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, text=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                if server.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"billing test server exited: {log.read()[-3000:]}")
                try:
                    if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("billing test server did not start within 60 s")
                time.sleep(0.2)
            yield BillingServer(base, payer_url, clock_file)
        finally:
            _stop(server)
            _stop(payer)
            log.close()


@pytest.fixture(scope="module")
def browser_context() -> Iterator[object]:
    """A fresh headless Chromium profile (Playwright, Debian's chromium); skipped only when
    chromium or Playwright is missing and REQUIRE_BROWSER is unset."""
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None  # type: ignore[assignment]
    missing = "chromium (/usr/bin/chromium)" if executable is None else ("the playwright package" if sync_playwright is None else None)
    if missing:
        message = f"{missing} is not installed: scripts/test installs it"
        if browser_required():
            pytest.fail(f"REQUIRE_BROWSER is set but {message}")
        pytest.skip(message)
    with tempfile.TemporaryDirectory(prefix="billing-chromium-") as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=executable, headless=True, args=CHROMIUM_ARGS, timeout=60_000,
            viewport={"width": 1360, "height": 900}, locale="en-US",
        )
        context.set_default_timeout(15_000)
        context.set_default_navigation_timeout(30_000)
        try:
            yield context
        finally:
            context.close()
