"""Fixtures of the packet tests: a fresh store per backend (`database_url` from tests/conftest.py)
loaded with the demo course through the real use cases and FHIR builders, and its packet."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import pytest

from service.config import Settings
from service.courses import DEMO_PATIENT, demo_course
from service.coverage.packet import Packet, build_packet
from service.usecases import Services, put_record

CLINIC = "riverbend"
PATIENT = DEMO_PATIENT.patient_key
TODAY = dt.date(2026, 4, 6)
"""Generation date: after the demo course's follow-up scores (2026-04-06)."""


def fixed_clock() -> dt.datetime:
    return dt.datetime(2026, 4, 6, 15, 30, tzinfo=dt.timezone.utc)


@pytest.fixture
def services(database_url: str) -> Iterator[Services]:
    """Migrated store with the demo course (clinic, clinicians, one patient's full IV course)."""
    services = Services(settings=Settings(database_url=database_url), clock=fixed_clock)
    services.migrate()
    for kind, payload in demo_course():
        put_record(services.uow(), kind, payload)
    yield services
    services.close()


@pytest.fixture
def packet(services: Services) -> Packet:
    return build_packet(services.uow(), CLINIC, PATIENT, today=TODAY, rules=services.summary_rules)
