"""Test support shared by tests/store, tests/usecases and tests/api: fake FHIR builders (so
these tests do not depend on the real mappings), a migrated engine per `database_url`, and
row counts of every store table."""

from __future__ import annotations

from typing import Iterator

import pytest
import sqlalchemy as sa

from service.domain.common import DomainRecord
from service.domain.records import KIND_OF_MODEL, RECORD_KINDS
from service.fhir import mapper
from service.fhir.context import MappingContext
from service.store import make_engine, upgrade_to_head
from service.store.tables import metadata

FAKE_TYPES = {
    "clinics": "Organization",
    "practitioners": "Practitioner",
    "locations": "Location",
    "patients": "Patient",
    "enrollments": "EpisodeOfCare",
    "administration-sessions": "MedicationAdministration",
    "questionnaire-responses": "QuestionnaireResponse",
}
LOINC = "http://loinc.org"
VITAL_CODES = {"blood_pressure": "85354-9", "heart_rate": "8867-4", "spo2": "59408-5", "respiratory_rate": "9279-1",
               "body_temperature": "8310-5"}


def fake_builder(record: DomainRecord, ctx: MappingContext) -> list[dict]:
    """One resource per record whose content follows the record (so a change is a new
    version); vitals give one Observation per measurement (so removing one deletes it)."""
    kind = KIND_OF_MODEL[type(record)]
    resource_type = FAKE_TYPES.get(kind, "Basic")
    main: dict = {
        "resourceType": resource_type,
        "id": ctx.id(resource_type, kind, record.id),
        "meta": {"profile": [f"http://example.org/fake/{kind}"]},
        "identifier": [ctx.identifier(kind, record.id)],
        "extension": [{"url": "http://example.org/fake/content", "valueString": record.model_dump_json()}],
    }
    patient_id = getattr(record, "patient_id", None)
    if patient_id:
        main["subject"] = ctx.patient_ref(patient_id)
    if kind == "vitals":
        out = []
        for name in record.measurements():  # type: ignore[attr-defined]
            out.append(
                {
                    "resourceType": "Observation",
                    "id": ctx.id("Observation", kind, record.id, name),
                    "meta": {"profile": ["http://hl7.org/fhir/StructureDefinition/vitalsigns"]},
                    "status": "final",
                    "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                              "code": "vital-signs"}]}],
                    "code": {"coding": [{"system": LOINC, "code": VITAL_CODES[name]}]},
                    "subject": ctx.patient_ref(patient_id or ""),
                    "effectiveDateTime": record.taken_at.isoformat(),  # type: ignore[attr-defined]
                    "extension": main["extension"],
                }
            )
        return out
    return [main]


@pytest.fixture
def fake_builders(monkeypatch: pytest.MonkeyPatch) -> None:
    builders = {spec.model: fake_builder for spec in RECORD_KINDS.values()}
    monkeypatch.setattr(mapper, "_BUILDERS", builders)


@pytest.fixture
def engine(database_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(database_url)
    upgrade_to_head(engine)
    yield engine
    engine.dispose()


def table_counts(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            table.name: connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            for table in metadata.sorted_tables
        }


def table_contents(engine: sa.Engine) -> dict[str, list[tuple]]:
    """Every row of every store table (sorted), to prove a failed write changed nothing."""
    with engine.connect() as connection:
        return {
            table.name: sorted(tuple(map(repr, row)) for row in connection.execute(sa.select(table)))
            for table in metadata.sorted_tables
        }


def generic_plan_scans(connection: sa.Connection, sql: str, params: dict) -> list[tuple[str, str, str | None]]:
    """(table, node type, index) of every table scan in PostgreSQL's generic plan of `sql` (psycopg
    `%(name)s` placeholders; `params` gives their names and order, its values are not used):
    the plan a prepared statement keeps once PostgreSQL stops making custom ones."""
    numbered = sql
    for number, name in enumerate(params, start=1):
        numbered = numbered.replace(f"%({name})s", f"${number}")
    driver = connection.connection.driver_connection
    driver.execute("SET plan_cache_mode = force_generic_plan")
    try:
        driver.execute(f"PREPARE generic_probe AS {numbered}")
        arguments = ", ".join("'{}'" if isinstance(value, list) else "'x'" for value in params.values())
        plan = driver.execute(f"EXPLAIN (FORMAT JSON) EXECUTE generic_probe({arguments})").fetchone()[0]
        driver.execute("DEALLOCATE generic_probe")
    finally:
        driver.execute("RESET plan_cache_mode")
    scans: list[tuple[str, str, str | None]] = []

    def walk(node: dict) -> None:
        if "Relation Name" in node:
            scans.append((node["Relation Name"], node["Node Type"], node.get("Index Name")))
        for child in node.get("Plans", []):
            walk(child)

    walk(plan[0]["Plan"])
    return scans
