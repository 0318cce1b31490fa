"""Golden mapping cases in mappings/cases/: `<name>.input.json` beside `<name>.expected.json`.

An input holds `context` records (mapped so references resolve, output not compared) and
`records` whose FHIR output is compared, as parsed JSON, with the expected file. Cases are
discovered from disk, so a new case cannot be left untested.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from service.domain.organization import Clinic
from service.domain.records import RECORD_KINDS
from service.fhir import MappingContext, map_record

CASES = Path(__file__).resolve().parents[2] / "mappings" / "cases"


def case_names() -> list[str]:
    return sorted(p.name.removesuffix(".input.json") for p in CASES.glob("*.input.json"))


def load_input(name: str) -> dict:
    return orjson.loads((CASES / f"{name}.input.json").read_bytes())


def run_case(name: str) -> tuple[list[dict], list[dict]]:
    """(resources of the case's records, resources of its context records)."""
    case = load_input(name)
    records = [RECORD_KINDS[r["kind"]].model.model_validate(r["payload"]) for r in case["context"] + case["records"]]
    clinic = next((r for r in records if isinstance(r, Clinic)), None)
    if clinic is None:
        raise ValueError(f"case {name} has no clinic among its records")
    ctx = MappingContext(clinic)
    split = len(case["context"])
    context = [res for rec in records[:split] for res in map_record(rec, ctx)]
    output = [res for rec in records[split:] for res in map_record(rec, ctx)]
    return output, context


def expected_path(name: str) -> Path:
    return CASES / f"{name}.expected.json"


def write_expected(name: str, resources: list[dict]) -> None:
    expected_path(name).write_bytes(orjson.dumps(resources, option=orjson.OPT_INDENT_2) + b"\n")
