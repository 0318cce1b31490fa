"""Fixtures of this test package: fake FHIR builders (autouse) and a migrated `engine` per
backend (`database_url` comes from tests/conftest.py: SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import pytest

from tests.store.support import engine, fake_builders  # noqa: F401  (fixtures)


@pytest.fixture(autouse=True)
def _use_fake_builders(fake_builders: None) -> None:  # noqa: F811
    """Tests here check storage and HTTP behaviour, not the real mappings."""
