"""Root test configuration: shared fixtures for every test package.

Fixtures:
- ``project_root``: the repository root (a ``Path``).
- ``postgres_server_url``: superuser URL of the PostgreSQL server in ``TEST_POSTGRES_URL``
  (``scripts/test`` starts a throwaway one and sets it).
- ``database_url``: a fresh, empty database, once per backend: ``sqlite`` (a file in the test's
  tmp dir) and ``postgres`` (a new database on that server, dropped afterwards).

Without ``TEST_POSTGRES_URL`` the PostgreSQL cases are skipped, unless ``REQUIRE_POSTGRES`` is
set (``scripts/test`` and so CI set it): then they fail, so a missing server is never silent.
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# `tests.plugins...` must be importable however pytest was started (`pytest` or `python -m pytest`).
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

# The external FHIR validator plugin; registered once its module exists.
pytest_plugins: list[str] = []
if (PROJECT_ROOT / "tests" / "plugins" / "fhir_validator.py").exists():
    pytest_plugins = ["tests.plugins.fhir_validator"]
# Real FHIR sync peers (HAPI, Medplum) and the fault-injecting proxy.
if (PROJECT_ROOT / "tests" / "peers" / "fixtures.py").exists():
    pytest_plugins.append("tests.peers.fixtures")

# Rate limiting is off in tests (tests/security/test_rate_limit.py switches it on for itself);
# authentication is NOT: API tests send real dev-mode tokens (tests/tokens.py).
os.environ.setdefault("RATE_LIMIT_PER_MINUTE", "0")

POSTGRES_URL_ENV = "TEST_POSTGRES_URL"
REQUIRE_POSTGRES_ENV = "REQUIRE_POSTGRES"
_FALSE_WORDS = {"", "0", "false", "no", "off"}


@dataclass(frozen=True)
class PostgresDecision:
    """What to do about PostgreSQL-backed tests in a given environment."""

    action: Literal["use", "skip", "fail"]
    url: str | None = None
    reason: str = ""


def postgres_decision(environ: Mapping[str, str]) -> PostgresDecision:
    """Decide from environment variables whether PostgreSQL tests run, skip or fail.

    A server URL means use it. No URL is a skip, unless REQUIRE_POSTGRES is set to anything but
    an empty string, 0, false, no or off: then it is a failure.
    """
    url = environ.get(POSTGRES_URL_ENV, "").strip()
    if url:
        return PostgresDecision("use", url=url)
    required = environ.get(REQUIRE_POSTGRES_ENV, "").strip().lower() not in _FALSE_WORDS
    if required:
        return PostgresDecision(
            "fail",
            reason=(
                f"{REQUIRE_POSTGRES_ENV} is set but {POSTGRES_URL_ENV} is not: no PostgreSQL "
                "server to test against (scripts/test starts one)"
            ),
        )
    return PostgresDecision(
        "skip",
        reason=(
            f"{POSTGRES_URL_ENV} is not set: PostgreSQL tests need a server; "
            "run scripts/test, which starts a throwaway one"
        ),
    )


def libpq_url(sqlalchemy_url: str) -> str:
    """Turn a SQLAlchemy URL (``postgresql+psycopg://...``) into a libpq one for psycopg."""
    from sqlalchemy.engine import make_url

    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def project_root() -> Path:
    """The repository root."""
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """Superuser SQLAlchemy URL of the test PostgreSQL server; skips or fails as decided above."""
    decision = postgres_decision(os.environ)
    if decision.action == "skip":
        pytest.skip(decision.reason)
    if decision.action == "fail":
        pytest.fail(decision.reason, pytrace=False)
    assert decision.url is not None

    import psycopg

    try:
        with psycopg.connect(libpq_url(decision.url), connect_timeout=10) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as error:
        pytest.fail(f"cannot connect to {POSTGRES_URL_ENV}={decision.url}: {error}", pytrace=False)
    return decision.url


@pytest.fixture
def _fresh_postgres_database(postgres_server_url: str) -> Iterator[str]:
    """A new, empty database on the test server; dropped (WITH (FORCE)) after the test."""
    import psycopg
    from psycopg import sql
    from sqlalchemy.engine import make_url

    name = f"test_{uuid.uuid4().hex[:16]}"
    server = libpq_url(postgres_server_url)
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield make_url(postgres_server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(server, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLAlchemy URL of a fresh, empty database, once per backend (sqlite, postgres)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite3'}"
    return request.getfixturevalue("_fresh_postgres_database")
