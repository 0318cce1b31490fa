"""Fixtures of the security tests: the demo course in a fresh store (SQLite and PostgreSQL),
a second clinic (`northside`), an app in REAL dev-mode authentication (tokens signed with the
local dev key and verified as in a running service), a client without any default token, and
row counts of every table (the audit trail excepted) to prove that refused requests write
nothing."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from service.api import create_app
from service.auth import AuthSettings
from service.config import Settings
from service.demo import load_demo
from service.usecases import Services, put_record
from tests.tokens import bearer

CLINIC = "riverbend"
OTHER_CLINIC = "northside"
FHIR_JSON = "application/fhir+json"
UNCOUNTED = {"audit_event"}
"""Refused requests are audited (outcome 4): that row is the point, not a leak."""


@dataclass
class Demo:
    patient_id: str
    """FHIR id of the demo patient (clinic riverbend)."""
    patient_key: str = "pt-0001"


@pytest.fixture
def services(database_url: str) -> Iterator[Services]:
    services = Services(settings=Settings(database_url=database_url, rate_limit_per_minute=0))
    services.migrate()
    load_demo(services.uow_factory)
    put_record(services.uow(), "clinics", {
        "id": OTHER_CLINIC, "clinic_id": OTHER_CLINIC, "name": "Northside Clinic",
        "identifier_system": "https://northside.example.org/ids",
    })
    yield services
    services.close()


@pytest.fixture
def app(services: Services):  # type: ignore[no-untyped-def]
    return create_app(services=services, auth_settings=AuthSettings(mode="dev"))


@pytest.fixture
def client(app) -> Iterator[TestClient]:  # type: ignore[no-untyped-def]
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def demo(client: TestClient) -> Demo:
    response = client.get("/fhir/Patient", headers={**bearer(roles=("admin",), clinic=CLINIC), "Accept": FHIR_JSON})
    assert response.status_code == 200, response.text
    return Demo(response.json()["entry"][0]["resource"]["id"])


def row_counts(services: Services) -> dict[str, int]:
    inspector = sa.inspect(services.engine)
    counts = {}
    with services.engine.connect() as connection:
        for table in sorted(inspector.get_table_names()):
            if table in UNCOUNTED or table == "alembic_version":
                continue
            counts[table] = connection.execute(sa.text(f'SELECT count(*) FROM "{table}"')).scalar_one()
    return counts
