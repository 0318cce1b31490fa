"""The packet API over HTTP: build and store, read the DocumentReference, download the PDF."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.tokens import authorize
from service.api import create_app
from service.usecases import Services
from tests.packet.conftest import CLINIC, PATIENT
from tests.packet.support import text_of

BASE = "/api/v1/coverage/packets"


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services=services), raise_server_exceptions=False) as test_client:
        yield authorize(test_client)


def test_post_builds_then_get_returns_pdf_and_document_reference(client: TestClient) -> None:
    created = client.post(BASE, params={"clinic_id": CLINIC, "patient_id": PATIENT})
    assert created.status_code == 201, created.text
    meta = created.json()
    assert meta["status"] == "created" and meta["resourceType"] == "DocumentReference"
    assert meta["generated_on"] == "2026-04-06"  # the services' clock
    assert meta["type"]["code"] == "103595-5"
    assert meta["pages"] <= 3 and meta["treatment_resistance_met"] is True
    assert meta["outcome"]["phq9"]["status"] == "response"

    again = client.post(BASE, params={"clinic_id": CLINIC, "patient_id": PATIENT})
    assert again.status_code == 200 and again.json()["status"] == "unchanged"

    pdf = client.get(meta["pdf"])
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF") and len(pdf.content) == meta["size"]
    assert "Jordan Rivera" in text_of(pdf.content)

    doc = client.get(meta["document_reference"])
    assert doc.status_code == 200
    assert doc.headers["content-type"].startswith("application/fhir+json")
    assert doc.json()["id"] == meta["id"]
    assert doc.json()["content"][0]["attachment"]["hash"] == meta["sha1"]

    scoped = client.get(meta["document_reference"], params={"clinic_id": "another-clinic"})
    assert scoped.status_code == 404


def test_unknown_patient_and_packet_are_404(client: TestClient) -> None:
    missing = client.post(BASE, params={"clinic_id": CLINIC, "patient_id": "nobody"})
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert client.get(f"{BASE}/00000000-0000-0000-0000-000000000000").status_code == 404
    assert client.get(f"{BASE}/00000000-0000-0000-0000-000000000000.pdf").status_code == 404


def test_packet_routes_are_in_the_openapi_document(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert "post" in paths[BASE]
    assert "get" in paths[BASE + "/{packet_id}.pdf"]
    assert "get" in paths[BASE + "/{packet_id}"]
