"""The billing page (`/billing`): served safely (in-process), and driven end to end in a real
headless Chromium against a real service process and the sandbox payer:

    demo patient needs auth -> pre-check ready -> packet -> submit (pended) -> check status
    (approved, units, preAuthRef) -> units used up (expiring) -> renewal drafted;
    Medicare-like payer for IV ketamine -> submit -> check status -> denied with its reason;
    a patient named with markup shows as text; filter by state; no console errors.

A screenshot of the page goes to reports/billing-page.png.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.api import create_app
from service.config import Settings
from service.usecases import Services

from .conftest import CLINIC, HOSTILE_NAME, LATE, REPORTS, BillingServer

STATIC = Path(__file__).resolve().parents[2] / "service" / "web" / "static"


# --------------------------------------------------------------------------- served safely (no browser)


@pytest.fixture
def client(tmp_path) -> TestClient:
    services = Services(settings=Settings(database_url=f"sqlite:///{tmp_path / 'store.sqlite3'}"))
    services.migrate()
    return TestClient(create_app(services=services))


def test_page_and_assets_are_served_with_a_strict_policy(client) -> None:
    page = client.get("/billing", params={"clinic_id": CLINIC})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    html = page.text
    assert '<script src="/billing/static/billing.js" defer></script>' in html
    assert re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html) is None, "no inline script"
    assert "http://" not in html and "https://" not in html, "no external assets (no CDN)"
    assert 'data-packets="true"' in html  # the packet API is mounted: the page offers "Build packet"
    for name, kind in (("billing.js", "text/javascript"), ("billing.css", "text/css")):
        asset = client.get(f"/billing/static/{name}")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind)
    assert client.get("/billing/static/../app.py").status_code == 404
    assert client.get("/billing/static/other.js").status_code == 422
    assert not [p for p in client.get("/openapi.json").json()["paths"] if p.startswith("/billing")]


def test_page_hides_build_packet_without_the_packet_api(tmp_path) -> None:
    from fastapi import FastAPI

    from service.web import billing

    app = FastAPI()
    app.include_router(billing.router)
    assert 'data-packets="false"' in TestClient(app).get("/billing").text


def test_script_writes_text_only_and_fetches_in_one_place() -> None:
    script = (STATIC / "billing.js").read_text(encoding="utf-8")
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in script, sink
    assert script.count("fetch(") == 1, "every request goes through api()"
    html = (STATIC / "billing.html").read_text(encoding="utf-8")
    labelled = set(re.findall(r'<label for="([^"]+)"', html))
    inputs = set(re.findall(r'<(?:input|select)[^>]*\bid="([^"]+)"', html))
    assert inputs <= labelled, inputs - labelled


# --------------------------------------------------------------------------- in a real browser


@pytest.fixture
def page(browser_context, billing_server: BillingServer):  # type: ignore[no-untyped-def]
    page = browser_context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on("console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None)
    page.on("response", lambda r: problems.append(f"HTTP {r.status} {r.request.method} {r.url}") if r.status >= 400 else None)
    page.problems = problems  # type: ignore[attr-defined]
    yield page
    page.close()


def _row(page, patient: str, state: str | None = None):  # type: ignore[no-untyped-def]
    selector = f'#worklist-table tbody tr[data-patient="{patient}"]'
    if state:
        selector += f'[data-state="{state}"]'
    return page.locator(selector)


def _open(page, patient: str, state: str):  # type: ignore[no-untyped-def]
    _row(page, patient, state).get_by_role("button", name=re.compile(r"^Open ")).click()
    detail = page.locator("#detail")
    detail.wait_for(state="visible")
    page.locator("#precheck-body .precheck-summary").wait_for()
    return detail


def test_billing_workflow_in_a_real_browser(page, billing_server: BillingServer) -> None:
    from playwright.sync_api import expect

    page.goto(billing_server.page_url())
    expect(page.get_by_role("heading", name="Prior authorizations")).to_be_visible()
    expect(page.get_by_role("columnheader", name="Units used / left")).to_be_visible()

    # the demo patient (coverage, no request yet) is on the worklist as needs-auth
    demo = _row(page, "pt-0001", "needs-auth")
    expect(demo).to_have_count(1)
    expect(demo).to_contain_text("Jordan Rivera")
    expect(demo).to_contain_text("IV ketamine series")
    expect(demo).to_contain_text("acme-commercial")
    expect(page.locator("#filter-needs-auth + label")).to_contain_text("(3)")

    # a name made of markup is shown as text and never runs
    hostile = _row(page, "pt-0003")
    expect(hostile).to_contain_text(HOSTILE_NAME)
    assert page.evaluate("window.__xss") is None
    assert page.locator("#worklist-table img").count() == 0

    # pre-check: every criterion with its status, evidence and links to the records
    detail = _open(page, "pt-0001", "needs-auth")
    expect(page.locator("#detail-title")).to_have_text("Jordan Rivera (pt-0001)")
    expect(page.locator("#precheck-body .precheck-summary")).to_contain_text("Ready to submit")
    trials = page.locator('#precheck-body li[data-key="treatment_resistance"]')
    expect(trials).to_have_attribute("data-status", "met")
    expect(trials.locator("a").first).to_have_attribute("href", re.compile(r"^/api/v1/medication-trials/.+clinic_id=riverbend"))
    expect(page.locator('#precheck-body li[data-key="rems"] .criterion-status')).to_have_text("N/A")
    assert page.locator('#precheck-body li[data-status="missing"]').count() == 0
    expect(page.get_by_role("button", name="Check status")).to_be_disabled()

    # build the medical-necessity packet: a link to the PDF and a preview frame
    page.get_by_role("button", name="Build packet").click()
    link = page.locator("#packet-link")
    expect(link).to_be_visible()
    expect(page.locator("iframe.packet-frame")).to_have_attribute("title", "Medical-necessity packet preview")
    pdf = page.request.get(billing_server.base_url + link.get_attribute("data-api"),
                           headers={"Authorization": page.evaluate("window.billing.authorization()")})
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf" and pdf.body()[:5] == b"%PDF-"

    # submit: the sandbox pends it
    page.get_by_role("button", name="Submit prior auth").click()
    expect(page.locator("#detail-status")).to_contain_text("Pended")
    expect(_row(page, "pt-0001", "pended")).to_have_count(1)
    expect(page.get_by_role("button", name="Submit prior auth")).to_be_disabled()
    request_id = _row(page, "pt-0001", "pended").get_attribute("data-request-id")
    assert request_id
    expect(page.get_by_role("link", name="PAS bundle (JSON)")).to_have_attribute(
        "href", f"/api/v1/coverage/prior-auth/{request_id}/bundle")

    # check status: the sandbox decides on $inquire -> approved with units and a preAuthRef
    page.get_by_role("button", name="Check status").click()
    expect(page.locator("#detail-status")).to_contain_text("Approved")
    approved = _row(page, "pt-0001", "approved")
    expect(approved).to_have_count(1)
    expect(approved).to_contain_text("0 used / 6 left (of 6)")
    expect(approved).to_contain_text(re.compile(r"2026-04-\d\d"))  # period: from today (2026-03-01), ~60 days
    decision = page.locator("#decision")
    expect(decision.locator(".preauth")).to_have_text(re.compile(r"\S+"))
    expect(decision.locator('tr[data-code="96365"]')).to_contain_text("6")
    expect(decision.locator('tr[data-code="J3490"]')).to_contain_text("approved")
    expect(decision).to_contain_text(re.compile(r"2026-03-01 – 2026-04-\d\d"))
    expect(page.locator("#usage")).to_contain_text("Sessions: 0 used, 6 left of 6 authorized")

    # Medicare-like payer, IV ketamine: pre-check says not covered; pended, then denied with the reason
    _open(page, "pt-0002", "needs-auth")
    expect(page.locator("#precheck-body .precheck-summary")).to_contain_text("Not covered")
    expect(page.locator("#precheck-body")).to_contain_text("off-label")
    page.get_by_role("button", name="Submit prior auth").click()
    expect(_row(page, "pt-0002", "pended")).to_have_count(1)
    page.get_by_role("button", name="Check status").click()
    denied = _row(page, "pt-0002", "denied")
    expect(denied).to_have_count(1)
    expect(denied.locator("ul.reasons")).to_contain_text("off-label")
    expect(page.locator("#decision .reasons").first).to_contain_text("off-label")
    expect(page.locator("#detail-status")).to_contain_text("Denied")

    # filter by state
    page.locator("#filter-denied").check()
    expect(page.locator("#worklist-table tbody tr[data-state]")).to_have_count(1)
    page.locator("#filter-all").check()
    expect(page.locator("#worklist-table tbody tr[data-state]")).to_have_count(3)

    # back to the approved request for the screenshot
    _open(page, "pt-0001", "approved")
    expect(page.locator("#decision .preauth")).to_be_visible()
    REPORTS.mkdir(exist_ok=True)
    page.screenshot(path=str(REPORTS / "billing-page.png"), full_page=True)
    page.get_by_role("button", name="Build packet").click()  # same day, same data: the stored packet
    expect(page.locator("#detail-status")).to_contain_text("Packet unchanged")

    # six infusions later: used up -> expiring with a warning; renewal drafts an R request
    billing_server.set_clock(LATE)
    page.get_by_role("button", name="Refresh").click()
    expiring = _row(page, "pt-0001", "expiring")
    expect(expiring).to_have_count(1)
    expect(expiring).to_contain_text("6 used / 0 left (of 6)")
    expect(expiring.locator("ul.warnings li")).to_have_count(1)
    _open(page, "pt-0001", "expiring")
    page.get_by_role("button", name="Request renewal").click()
    expect(page.locator("#detail-status")).to_contain_text("Renewal drafted")
    expect(page.locator("#detail-facts")).to_contain_text("Renewal (R)")
    expect(_row(page, "pt-0001", "needs-auth")).to_have_count(1)
    expect(page.get_by_role("button", name="Submit prior auth")).to_be_enabled()

    assert page.problems == []  # type: ignore[attr-defined]
