"""FHIR Bulk Data Access (IG v2) `$export`: kick-off, status, cancel, output files, and the
runner that does the work in a background thread of the server process.

Flow (docs/decisions/0009-bulk-export.md):
- `kick_off` validates the request (`_type`, `_since`, `_outputFormat`) and inserts a job row
  (status `accepted`) with the clinic scope and requester; the API answers 202 with
  `Content-Location: .../$export-status/{job}`.
- `ExportRunner` (one daemon thread per server process) claims jobs from the table with a
  lease (`runner`, `heartbeat` renewed every second while running) and runs `run_job`: ONE
  streamed query in one read snapshot, each row's stored canonical JSON bytes written as they
  are plus b"\n" to `<export_dir>/<job>/<Type>.ndjson.part`, renamed to `.ndjson` when done.
  Memory is one batch of rows (default 5,000) whatever the export size.
- Restart: a job is idempotent (it starts again from scratch: its directory is emptied). A
  job left `in-progress` by a process that died has a stale heartbeat and is claimed again by
  any runner after `stale_after` (30 s); `accepted` jobs are claimed at once.
- Cancel (`DELETE`): the row is deleted and the files removed; a running job notices at its
  next heartbeat, stops and removes its directory.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import re
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import orjson

from ..store.fhir_export import ExportJob, ExportJobStore
from .fhir_errors import FhirError, invalid
from .fhir_search import parse_date_value
from .fhir_types import READ_TYPES

log = logging.getLogger(__name__)

NDJSON = "application/fhir+ndjson"
OUTPUT_FORMATS = {"application/fhir+ndjson", "application/ndjson", "ndjson"}
KNOWN_PARAMETERS = {"_type", "_since", "_outputFormat", "_format"}
UNSUPPORTED_PARAMETERS = {"_elements", "_typeFilter", "patient", "includeAssociatedData"}
FILE_NAME = re.compile(r"^([A-Z][A-Za-z]{1,63})\.ndjson$")
JOB_ID = re.compile(r"^[0-9a-f]{32}$")
PATIENT_COMPARTMENT_TYPES: tuple[str, ...] = tuple(t for t in READ_TYPES if t not in (
    "Location", "Medication", "Organization", "Practitioner", "Provenance",
))
"""Types that can have a patient column (Patient/$export exports those rows that have one)."""
RETRY_AFTER_SECONDS = 1
BATCH_SIZE = 5000


@dataclass(frozen=True)
class ExportParameters:
    level: str
    """'system' or 'patient'."""
    types: tuple[str, ...]
    since: dt.datetime | None
    patient_id: str | None = None
    """A patient-context token's patient: only its compartment (and resources of no patient)."""

    def to_json(self) -> str:
        return orjson.dumps({"level": self.level, "types": list(self.types),
                             "since": self.since.isoformat() if self.since else None, "patient": self.patient_id}).decode()

    @classmethod
    def from_json(cls, text: str) -> "ExportParameters":
        data = orjson.loads(text)
        since = dt.datetime.fromisoformat(data["since"]) if data.get("since") else None
        return cls(data["level"], tuple(data["types"]), since, data.get("patient"))


def parse_parameters(level: str, params: Sequence[tuple[str, str]], *, strict: bool = False) -> ExportParameters:
    """The kick-off parameters; 400 for a bad `_type`, `_since` or `_outputFormat` (and, with
    `Prefer: handling=strict`, for parameters this server does not support)."""
    allowed = READ_TYPES if level == "system" else PATIENT_COMPARTMENT_TYPES
    types: list[str] = []
    since: dt.datetime | None = None
    for key, value in params:
        if key == "_type":
            for name in (v.strip() for v in value.split(",")):
                if not name:
                    continue
                if name not in allowed:
                    where = "" if level == "system" else " in the patient compartment"
                    raise invalid(f"_type: {name[:64]!r} is not a resource type this server exports{where}", "_type")
                if name not in types:
                    types.append(name)
        elif key == "_since":
            if since is not None:
                raise invalid("_since may be given once", "_since")
            text = value.strip()
            if text[:1].isalpha():
                raise invalid(f"_since: {text[:40]!r} is not a FHIR instant", "_since")
            since = _since(text)
        elif key == "_outputFormat":
            if value.split(";")[0].strip().lower() not in OUTPUT_FORMATS:
                raise FhirError.of(400, f"_outputFormat {value[:60]!r} is not supported; use {NDJSON}", "not-supported", ["_outputFormat"])
        elif key in KNOWN_PARAMETERS:
            continue
        elif strict or key in UNSUPPORTED_PARAMETERS:
            raise FhirError.of(400, f"parameter {key[:60]!r} is not supported by $export", "not-supported", [key[:60]])
    return ExportParameters(level, tuple(types) or allowed, since)


def _since(text: str) -> dt.datetime:
    try:
        return parse_date_value(text, "_since").start
    except FhirError:
        raise invalid(f"_since: {text[:40]!r} is not a FHIR instant", "_since") from None


def kick_off(
    store: ExportJobStore, request_url: str, level: str, params: Sequence[tuple[str, str]], *,
    respond_async: bool, clinic_id: str | None, requester: str | None, strict: bool = False,
    patient_id: str | None = None,
) -> str:
    """Validate and queue an export; returns the job id."""
    if not respond_async:
        raise FhirError.of(400, "$export is asynchronous: send the header 'Prefer: respond-async'", "invalid")
    parameters = dataclasses.replace(parse_parameters(level, params, strict=strict), patient_id=patient_id)
    job_id = uuid.uuid4().hex
    store.create(job_id, request=request_url, parameters=parameters.to_json(), clinic_id=clinic_id, requester=requester)
    return job_id


def _job_of(store: ExportJobStore, job_id: str, clinic_id: str | None) -> ExportJob:
    """The job, when the caller may see it: 404 for an unknown job or another clinic's."""
    job = store.get(job_id) if JOB_ID.match(job_id) else None
    if job is None or (job.clinic_id is not None and job.clinic_id != clinic_id):
        raise FhirError.of(404, f"no export job {job_id[:40]!r}", "not-found")
    return job


@dataclass(frozen=True)
class ExportStatus:
    status: int
    headers: dict[str, str]
    manifest: dict[str, Any] | None = None


def export_status(store: ExportJobStore, job_id: str, *, clinic_id: str | None, base: str) -> ExportStatus:
    """202 + X-Progress while running, 200 + the manifest when complete, 500 when it failed."""
    job = _job_of(store, job_id, clinic_id)
    if job.status == "error":
        raise FhirError.of(500, f"the export failed: {job.error or 'unknown error'}", "exception")
    if job.status != "completed":
        progress = job.progress or ("queued" if job.status == "accepted" else job.status)
        return ExportStatus(202, {"X-Progress": progress[:100], "Retry-After": str(RETRY_AFTER_SECONDS)})
    output = [
        {"type": item["type"], "url": f"{base}/$export-file/{job.id}/{item['file']}", "count": item["count"]}
        for item in orjson.loads(job.output or "[]")
    ]
    assert job.transaction_time is not None
    manifest = {
        "transactionTime": job.transaction_time.isoformat(timespec="milliseconds"),
        "request": job.request,
        "requiresAccessToken": True,
        "output": output,
        "error": [],
    }
    return ExportStatus(200, {}, manifest)


def cancel(store: ExportJobStore, export_dir: Path, job_id: str, *, clinic_id: str | None) -> None:
    """Delete the job and its files (a running job stops at its next heartbeat)."""
    job = _job_of(store, job_id, clinic_id)
    store.delete(job.id)
    shutil.rmtree(export_dir / job.id, ignore_errors=True)


def output_file(store: ExportJobStore, export_dir: Path, job_id: str, file_name: str, *, clinic_id: str | None) -> Path:
    job = _job_of(store, job_id, clinic_id)
    if job.status != "completed" or not FILE_NAME.match(file_name):
        raise FhirError.of(404, f"no output file {file_name[:80]!r} of export {job_id}", "not-found")
    files = {item["file"] for item in orjson.loads(job.output or "[]")}
    path = export_dir / job.id / file_name
    if file_name not in files or not path.is_file():
        raise FhirError.of(404, f"no output file {file_name[:80]!r} of export {job_id}", "not-found")
    return path


# --------------------------------------------------------------------------- the work


class Cancelled(Exception):
    """The job row is gone (DELETE) or was taken over by another runner."""


@dataclass(frozen=True)
class ExportResult:
    counts: dict[str, int]
    transaction_time: dt.datetime


def write_ndjson(
    store: ExportJobStore, parameters: ExportParameters, directory: Path, *, clinic_id: str | None,
    clock: Callable[[], dt.datetime], batch_size: int = BATCH_SIZE, heartbeat: Callable[[int], None] | None = None,
) -> ExportResult:
    """Stream the matching resources into `<directory>/<Type>.ndjson` (through `.part` files);
    returns the count per type. `heartbeat(total_so_far)` is called after every batch."""
    directory.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {}
    counts: dict[str, int] = {}
    total = 0
    transaction_time = clock()
    stream = store.stream(parameters.types, patient_compartment=parameters.level == "patient", since=parameters.since,
                          clinic_id=clinic_id, patient_id=parameters.patient_id, batch_size=batch_size)
    try:
        for batch in stream:
            for resource_type, data in batch:
                out = files.get(resource_type)
                if out is None:
                    out = files[resource_type] = open(directory / f"{resource_type}.ndjson.part", "wb", buffering=1 << 18)
                    counts[resource_type] = 0
                if b"\n" in data:  # never for canonical orjson output; kept as a guard for foreign rows
                    data = orjson.dumps(orjson.loads(data))
                out.write(data)
                out.write(b"\n")
                counts[resource_type] += 1
            total += len(batch)
            if heartbeat is not None:
                heartbeat(total)
    finally:
        stream.close()
        for out in files.values():
            out.close()
    for resource_type in files:
        os.replace(directory / f"{resource_type}.ndjson.part", directory / f"{resource_type}.ndjson")
    return ExportResult(counts, transaction_time)


def run_job(
    store: ExportJobStore, job: ExportJob, export_dir: Path, runner: str, *, clock: Callable[[], dt.datetime],
    batch_size: int = BATCH_SIZE, heartbeat_seconds: float = 1.0,
) -> ExportResult | None:
    """Do one claimed job from scratch; None when it was cancelled meanwhile."""
    directory = export_dir / job.id
    shutil.rmtree(directory, ignore_errors=True)  # a restarted job begins again
    parameters = ExportParameters.from_json(job.parameters)
    last = [0.0]

    def heartbeat(total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= heartbeat_seconds:
            last[0] = now
            if not store.heartbeat(job.id, runner, f"in-progress: {total:,} resources written"):
                raise Cancelled(job.id)

    try:
        result = write_ndjson(store, parameters, directory, clinic_id=job.clinic_id, clock=clock,
                              batch_size=batch_size, heartbeat=heartbeat)
    except Cancelled:
        shutil.rmtree(directory, ignore_errors=True)
        return None
    except Exception as error:  # noqa: BLE001 - the job records why it failed
        log.exception("export %s failed", job.id)
        shutil.rmtree(directory, ignore_errors=True)
        store.fail(job.id, runner, f"{type(error).__name__}")
        return None
    output = [{"type": t, "file": f"{t}.ndjson", "count": n} for t, n in sorted(result.counts.items()) if n]
    if not store.finish(job.id, runner, output=orjson.dumps(output).decode(), transaction_time=result.transaction_time):
        shutil.rmtree(directory, ignore_errors=True)  # deleted while finishing
        return None
    return result


class ExportRunner:
    """The background worker of a server process: claims and runs export jobs one at a time."""

    def __init__(
        self, store: ExportJobStore, export_dir: Path, *, clock: Callable[[], dt.datetime],
        batch_size: int = BATCH_SIZE, poll_seconds: float = 15.0, stale_after: dt.timedelta = dt.timedelta(seconds=30),
    ) -> None:
        self.store = store
        self.export_dir = Path(export_dir)
        self.clock = clock
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.stale_after = stale_after
        self.id = f"{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the thread (idempotent); it first picks up jobs left by a dead process."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._loop, name="fhir-export", daemon=True)
                self._thread.start()

    def wake(self) -> None:
        self.start()
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def run_pending(self) -> int:
        """Run every claimable job now, in the calling thread; returns how many ran."""
        ran = 0
        while not self._stop.is_set():
            job = self.store.claim(self.id, stale_before=self.clock() - self.stale_after)
            if job is None:
                return ran
            run_job(self.store, job, self.export_dir, self.id, clock=self.clock, batch_size=self.batch_size)
            ran += 1
        return ran

    def _loop(self) -> None:
        # A kick-off wakes the thread at once; the poll only picks up jobs whose process died
        # (stale after 30 s), so it can be slow and stay off SQLite's write lock.
        while not self._stop.is_set():
            self._wake.clear()
            try:
                self.run_pending()
            except Exception:  # noqa: BLE001 - keep the worker alive (database briefly unreachable)
                log.exception("export runner: claiming a job failed")
            self._wake.wait(self.poll_seconds)
