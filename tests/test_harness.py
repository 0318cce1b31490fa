"""Tests of the test harness itself: database fixtures, the PostgreSQL skip/fail rule, scripts."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from tests.conftest import postgres_decision

EXPECTED_DIALECT = {"sqlite": "sqlite", "postgres": "postgresql"}


def test_database_url_gives_a_working_empty_database(
    database_url: str, request: pytest.FixtureRequest
) -> None:
    backend = request.node.callspec.params["database_url"]
    engine = create_engine(database_url)
    try:
        assert engine.dialect.name == EXPECTED_DIALECT[backend]
        assert inspect(engine).get_table_names() == []
        with engine.begin() as connection:
            connection.execute(
                text("CREATE TABLE infusion (id INTEGER PRIMARY KEY, dose_mg_per_kg NUMERIC(5,2))")
            )
            connection.execute(
                text("INSERT INTO infusion (id, dose_mg_per_kg) VALUES (:id, :dose)"),
                [{"id": 1, "dose": 0.5}, {"id": 2, "dose": 0.75}],
            )
        with engine.connect() as connection:
            rows = connection.execute(
                text("SELECT id, dose_mg_per_kg FROM infusion ORDER BY id")
            ).all()
        assert [(row.id, float(row.dose_mg_per_kg)) for row in rows] == [(1, 0.5), (2, 0.75)]
    finally:
        engine.dispose()


@pytest.mark.parametrize("attempt", [1, 2])
def test_each_test_gets_its_own_database(database_url: str, attempt: int) -> None:
    # The same CREATE TABLE twice (no IF NOT EXISTS): the second attempt fails if state leaks.
    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE integration_session (id INTEGER PRIMARY KEY)"))
            connection.execute(text("INSERT INTO integration_session (id) VALUES (:id)"), {"id": attempt})
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM integration_session")).scalar_one() == 1
    finally:
        engine.dispose()


def test_database_is_private_to_the_test(
    database_url: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if request.node.callspec.params["database_url"] == "sqlite":
        assert url.database is not None and Path(url.database).parent == tmp_path
    else:
        assert url.drivername == "postgresql+psycopg"
        assert url.database is not None and url.database.startswith("test_")


def test_postgres_url_is_used_when_set() -> None:
    url = "postgresql+psycopg://postgres@127.0.0.1:5999/postgres"
    decision = postgres_decision({"TEST_POSTGRES_URL": url, "REQUIRE_POSTGRES": "1"})
    assert (decision.action, decision.url) == ("use", url)


def test_missing_postgres_is_a_skip_when_not_required() -> None:
    for environ in ({}, {"REQUIRE_POSTGRES": ""}, {"REQUIRE_POSTGRES": "0"}, {"TEST_POSTGRES_URL": " "}):
        decision = postgres_decision(environ)
        assert decision.action == "skip", environ
        assert "TEST_POSTGRES_URL" in decision.reason
        assert "scripts/test" in decision.reason


def test_missing_postgres_is_an_error_when_required() -> None:
    for value in ("1", "true", "yes"):
        decision = postgres_decision({"REQUIRE_POSTGRES": value})
        assert decision.action == "fail", value
        assert "REQUIRE_POSTGRES" in decision.reason


def test_scripts_test_requires_postgres() -> None:
    # What makes CI fail rather than skip: the test command itself sets REQUIRE_POSTGRES.
    script = (Path(__file__).resolve().parent.parent / "scripts" / "test").read_text()
    assert re.search(r"^\s*export REQUIRE_POSTGRES=1\s*$", script, re.MULTILINE)


def test_project_root_fixture(project_root: Path) -> None:
    assert (project_root / "pyproject.toml").is_file()
    assert (project_root / "service" / "__init__.py").is_file()


def test_readme_starts_with_the_two_setup_commands(project_root: Path) -> None:
    readme = (project_root / "README.md").read_text()
    first_block = re.search(r"```[a-z]*\n(.*?)```", readme, re.DOTALL)
    assert first_block is not None
    before = readme[: first_block.start()].strip().splitlines()
    assert before[0].startswith("# ") and len(before) <= 3, "the commands come right after the title"
    commands = [line.split()[0] for line in first_block.group(1).splitlines() if line.strip()]
    assert commands == ["scripts/run-demo", "scripts/test"]
    for command in commands:
        path = project_root / command
        assert path.is_file() and os.access(path, os.X_OK), f"{command} must be an executable file"
