"""Mapping benchmark: domain records -> FHIR JSON ready to store, resources per second on one
core, beside a baseline measured in the same run: building and serializing the same
resources naively through fhir.resources (R4B) models.

Run: `.venv/bin/python -m benchmarks.mapping [--courses N]`; writes results/mapping.md.
"""

from __future__ import annotations

import argparse

import orjson

from service.courses import generated_courses
from service.domain.records import RECORD_KINDS
from service.fhir import MappingContext, map_record
from service.fhir.r4 import model_class

from .common import best_rate, write_table


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--courses", type=int, default=40)
    args = parser.parse_args()
    payloads = list(generated_courses(args.courses, seed=11))
    records = [RECORD_KINDS[kind].model.model_validate(p) for kind, p in payloads]
    ctx = MappingContext(records[0])
    resources = [res for r in records for res in map_record(r, ctx)]
    count = len(resources)

    def fast_path() -> int:
        n = 0
        for record in records:
            for resource in map_record(record, ctx):
                orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)
                n += 1
        return n

    def naive_baseline() -> int:
        for resource in resources:
            model = model_class(resource["resourceType"]).model_validate(resource)
            model.model_dump_json(exclude_none=True)
        return count

    ours = best_rate(fast_path)
    baseline = best_rate(naive_baseline, repeats=3)
    ratio = ours / baseline
    rows = [
        ["map_record + orjson (bulk path)", f"{ours:,.0f}", f"{ratio:.1f}x"],
        ["fhir.resources R4B validate + serialize (naive baseline)", f"{baseline:,.0f}", "1.0x"],
    ]
    path = write_table(
        "mapping",
        "Mapping benchmark: domain records -> FHIR JSON",
        ["path", "resources/s (1 core, best of runs)", "vs baseline"],
        rows,
        [
            f"{len(records):,} records from {args.courses} generated courses -> {count:,} resources per pass",
            "target: >= 10x the naive baseline; validity of every output is checked in tests (golden cases,"
            " invariants, the HL7 validator), not here",
        ],
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
