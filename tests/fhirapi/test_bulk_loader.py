"""Smoke test of the benchmark loader (benchmarks/fhir_load.py): loading generated courses
through it stores exactly what `put_record` stores for the same payloads (same resources,
content, search columns and tokens), on both backends."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa

from benchmarks.fhir_load import SETUP, load_courses
from service.courses import clinic_payloads, course_payloads, generated_specs
from service.store import make_engine, upgrade_to_head
from service.usecases import Services, put_record
from service.config import Settings

COURSES = 2


def _plain(value: object) -> object:
    """Timestamps as SQLite returns them from raw SQL (text), whatever the backend."""
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
    return value


def _snapshot(engine: sa.Engine) -> tuple[dict, set]:
    with engine.connect() as connection:
        resources = {
            (r[0], r[1]): tuple(r[2:])
            for r in connection.execute(sa.text(
                "SELECT resource_type, id, content_hash, patient_id, clinic_id, status, date_start, date_end, "
                "source_kind, source_clinic_id, source_key FROM fhir_resource"
            ))
        }
        tokens = {tuple(r) for r in connection.execute(sa.text(
            "SELECT resource_type, resource_id, param, system, value FROM fhir_search_token"))}
    for key, row in resources.items():
        row = resources[key] = tuple(_plain(v) for v in row)
        if key[0] == "Provenance":  # Provenance.recorded is the transaction time: not comparable
            resources[key] = (None, row[1], row[2], row[3], None, None, *row[6:])
    return resources, tokens


def test_loader_stores_what_put_record_stores(database_url: str, tmp_path: Path) -> None:
    engine = make_engine(database_url)
    upgrade_to_head(engine)
    written, _ = load_courses(database_url, COURSES, seed=3, workers=1, per_transaction=1)
    loaded = _snapshot(engine)
    engine.dispose()

    services = Services(settings=Settings(database_url=f"sqlite:///{tmp_path / 'reference.sqlite3'}"))
    services.migrate()
    for kind, payload in clinic_payloads(SETUP):
        put_record(services.uow(), kind, payload)
    for spec in generated_specs(COURSES, 3):
        for kind, payload in course_payloads(spec, SETUP):
            put_record(services.uow(), kind, payload)
    reference = _snapshot(services.engine)
    services.close()

    assert len(loaded[0]) > 400 and written >= len(loaded[0])
    assert loaded[0] == reference[0]
    assert loaded[1] == reference[1]
