"""Fast loader of generated program courses into the FHIR store, for benchmarks.

`put_record` (one transaction per record, reference checks, idempotency) runs ~100 records/s;
a million resources (~4,000 courses) would take hours. This loader produces the SAME stored
rows much faster: each course's payloads are validated into domain records, mapped with
`service.fhir.map_record` (plus the PHQ-9/MADRS outcome Observations `put_record` derives
from the patient's scores), and written through the store's batched write path
(`FhirResourceRepository.save_many`: canonical JSON bytes with meta, content hash, the
patient/clinic/status/date columns and search tokens of fhir_index.py, history for resources
rewritten within the load) plus outbox rows, several courses per transaction. The domain
`record` rows are not written (search, read and export never read them).
`tests/fhirapi/test_bulk_loader.py` checks the result equals what `put_record` stores.

Parallel: `workers` processes each take every `workers`-th course (the clinic and the first
course are loaded first, alone, so resources shared by all courses exist before the workers
race to create them).
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import time
from typing import Iterable, Iterator

from service.courses import ClinicSetup, Payload, clinic_payloads, course_payloads, generated_specs
from service.domain.organization import Clinic
from service.domain.outcomes import DEFAULT_RULES
from service.domain.questionnaires import QuestionnaireAnswers
from service.domain.outcomes import ScorePoint, trajectory
from service.fhir import MappingContext, map_record
from service.fhir.outcomes import outcome_observations
from service.store import make_engine
from service.store.repository import ResourceInput
from service.store.unit_of_work import SqlUnitOfWork
from service.usecases.records import OUTCOME_INSTRUMENTS, validate_record

SETUP = ClinicSetup()


def map_course(payloads: Iterable[Payload], clinic: Clinic, now: dt.datetime) -> list[ResourceInput]:
    """The resources `put_record` would write for these payloads, in write order."""
    items: list[ResourceInput] = []
    answers: dict[tuple[str, str], list[QuestionnaireAnswers]] = {}
    ctx = MappingContext(clinic=clinic, recorded_at=now)
    for kind, payload in payloads:
        record = validate_record(kind, payload)
        source = (kind, record.clinic_id, record.id)
        items += [ResourceInput(resource, record.clinic_id, source) for resource in map_record(record, ctx)]
        if isinstance(record, QuestionnaireAnswers) and record.instrument in OUTCOME_INSTRUMENTS:
            mine = answers.setdefault((record.clinic_id, record.patient_id), [])
            mine.append(record)
            points = [
                ScorePoint(a.authored_at, a.result().total, a.id)
                for a in sorted(mine, key=lambda a: a.id)
                if a.instrument is record.instrument and a.result().total is not None
            ]
            track = trajectory(record.instrument, points, DEFAULT_RULES)
            for resource, point in zip(outcome_observations(record.instrument, record.patient_id, track, DEFAULT_RULES, ctx), track[1:]):
                items.append(ResourceInput(resource, record.clinic_id, ("questionnaire-responses", record.clinic_id, point.point.record_id)))
    return items


def _clinic() -> Clinic:
    kind, payload = clinic_payloads(SETUP)[0]
    return validate_record(kind, payload)  # type: ignore[return-value]


def _now() -> dt.datetime:
    """The transaction time as the unit of work keeps it (milliseconds)."""
    moment = dt.datetime.now(dt.timezone.utc)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _write(engine, items: list[ResourceInput], now: dt.datetime) -> int:  # type: ignore[no-untyped-def]
    with SqlUnitOfWork(engine, lambda: now) as uow:
        batch = uow.resources.save_many(items)
        for write in batch.writes:
            if write.changed:
                uow.outbox.append(write)
        uow.commit()
    return sum(1 for w in batch.writes if w.changed)


def _courses(count: int, seed: int, worker: int, workers: int, first: int) -> Iterator[list[Payload]]:
    for index, spec in enumerate(generated_specs(count, seed)):
        if index >= first and index % workers == worker:
            yield course_payloads(spec, SETUP)


def _load_part(url: str, count: int, seed: int, worker: int, workers: int, first: int, per_transaction: int) -> int:
    engine = make_engine(url)
    clinic = _clinic()
    written = 0
    pending: list[ResourceInput] = []
    now = _now()
    try:
        for n, payloads in enumerate(_courses(count, seed, worker, workers, first), 1):
            pending += map_course(payloads, clinic, now)
            if n % per_transaction == 0:
                written += _write(engine, pending, now)
                pending = []
                now = _now()
        if pending:
            written += _write(engine, pending, now)
    finally:
        engine.dispose()
    return written


def load_courses(url: str, count: int, *, seed: int = 7, workers: int = 2, per_transaction: int = 4) -> tuple[int, float]:
    """Load the clinic and `count` generated courses; returns (resource versions written, seconds)."""
    start = time.perf_counter()
    engine = make_engine(url)
    now = _now()
    clinic = _clinic()
    first = min(1, count)
    head: list[Payload] = list(clinic_payloads(SETUP))
    for spec in list(generated_specs(first, seed)):
        head += course_payloads(spec, SETUP)
    written = _write(engine, map_course(head, clinic, now), now)
    engine.dispose()
    if workers <= 1:
        written += _load_part(url, count, seed, 0, 1, first, per_transaction)
    else:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            parts = pool.starmap(_load_part, [(url, count, seed, w, workers, first, per_transaction) for w in range(workers)])
        written += sum(parts)
    return written, time.perf_counter() - start
