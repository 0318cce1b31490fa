"""FHIR Bulk Data `$export` (service/api/fhir/operations/export.py, usecases/fhir_export.py):
kick-off, polling, manifest, NDJSON output (stored bytes, counts per type), `_type`, `_since`,
Patient-level compartment, errors as OperationOutcomes, cancel, restart of a job left by a dead
process, memory that does not grow with the export size, and HL7 validation of a sample."""

from __future__ import annotations

import datetime as dt
import time
import tracemalloc
from pathlib import Path
from typing import Callable

import orjson
from fastapi.testclient import TestClient

from service.store.fhir_export import ExportJobStore
from service.store.repository import ResourceInput
from service.usecases import Services
from service.usecases.fhir_export import ExportParameters, ExportRunner, write_ndjson

from .conftest import FHIR_JSON, outcome, new_observation

ASYNC = {"Prefer": "respond-async"}
NDJSON = "application/fhir+ndjson"


def kick_off(client: TestClient, path: str = "/fhir/$export", **params: str) -> str:
    response = client.get(path, params=params, headers=ASYNC)
    assert response.status_code == 202, response.text
    location = response.headers["content-location"]
    assert location.startswith("http://testserver/fhir/$export-status/")
    return location.removeprefix("http://testserver")


def wait_manifest(client: TestClient, status_path: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(status_path)
        if response.status_code == 200:
            assert response.headers["content-type"].startswith("application/json")
            return response.json()
        assert response.status_code == 202, response.text
        assert response.headers["x-progress"]
        assert int(response.headers["retry-after"]) >= 1
        time.sleep(0.05)
    raise AssertionError("export did not complete")


def download(client: TestClient, url: str) -> list[bytes]:
    response = client.get(url.removeprefix("http://testserver"), headers={"Accept": NDJSON})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(NDJSON)
    assert response.content.endswith(b"\n")
    return response.content.split(b"\n")[:-1]


def stored_counts(services: Services, *, compartment: bool = False) -> dict[str, int]:
    import sqlalchemy as sa

    where = "WHERE patient_id IS NOT NULL" if compartment else ""
    with services.engine.connect() as connection:
        rows = connection.execute(sa.text(f"SELECT resource_type, count(*) FROM fhir_resource {where} GROUP BY resource_type"))
        return {r[0]: r[1] for r in rows}


def test_system_export_kick_off_poll_manifest_and_ndjson(fhir: TestClient, services: Services) -> None:
    status_path = kick_off(fhir, _outputFormat=NDJSON)
    manifest = wait_manifest(fhir, status_path)
    assert manifest["requiresAccessToken"] is True
    assert manifest["request"].endswith("/fhir/$export?_outputFormat=application%2Ffhir%2Bndjson")
    assert manifest["error"] == []
    dt.datetime.fromisoformat(manifest["transactionTime"])
    counts = stored_counts(services)
    assert {o["type"]: o["count"] for o in manifest["output"]} == counts
    assert len(counts) >= 8
    for item in manifest["output"]:
        assert item["url"].endswith(f"/$export-file/{status_path.rsplit('/', 1)[1]}/{item['type']}.ndjson")
        lines = download(fhir, item["url"])
        assert len(lines) == item["count"]
        ids = set()
        for line in lines[:3]:
            resource = orjson.loads(line)
            assert resource["resourceType"] == item["type"]
            # the line IS the stored canonical JSON (what a read returns), not a re-serialization
            assert fhir.get(f"/fhir/{item['type']}/{resource['id']}").content == line
        for line in lines:
            ids.add(orjson.loads(line)["id"])
        assert len(ids) == item["count"]


def test_type_and_since_filters(fhir: TestClient, services: Services, demo) -> None:
    manifest = wait_manifest(fhir, kick_off(fhir, _type="Patient,Observation"))
    assert sorted(o["type"] for o in manifest["output"]) == ["Observation", "Patient"]
    counts = stored_counts(services)
    assert {o["type"]: o["count"] for o in manifest["output"]} == {"Observation": counts["Observation"], "Patient": 1}

    since = dt.datetime.now(dt.timezone.utc)
    time.sleep(0.02)
    created = fhir.post("/fhir/Observation", json=new_observation(demo.patient_id), headers={"Content-Type": FHIR_JSON})
    assert created.status_code == 201, created.text
    manifest = wait_manifest(fhir, kick_off(fhir, _since=since.isoformat(timespec="milliseconds").replace("+00:00", "Z")))
    assert [(o["type"], o["count"]) for o in manifest["output"]] == [("Observation", 1)]
    [line] = download(fhir, manifest["output"][0]["url"])
    assert orjson.loads(line)["id"] == created.json()["id"]
    # transactionTime chains: nothing changed since the last export
    later = wait_manifest(fhir, kick_off(fhir, _since=manifest["transactionTime"]))
    assert later["output"] == []


def test_patient_level_export_is_the_patient_compartment(fhir: TestClient, services: Services, demo) -> None:
    manifest = wait_manifest(fhir, kick_off(fhir, "/fhir/Patient/$export"))
    types = {o["type"] for o in manifest["output"]}
    assert {o["type"]: o["count"] for o in manifest["output"]} == stored_counts(services, compartment=True)
    assert "Patient" in types and "Observation" in types
    assert not types & {"Organization", "Practitioner", "Provenance", "Medication", "Location"}
    for item in manifest["output"]:
        for line in download(fhir, item["url"]):
            resource = orjson.loads(line)
            if resource["resourceType"] == "Patient":
                assert resource["id"] == demo.patient_id
            else:
                ref = (resource.get("subject") or resource.get("patient") or resource.get("beneficiary"))["reference"]
                assert ref == f"Patient/{demo.patient_id}"
    # _type restricted to the compartment's types
    outcome(fhir.get("/fhir/Patient/$export", params={"_type": "Organization"}, headers=ASYNC), 400, expression="_type")


def test_errors_are_operation_outcomes(fhir: TestClient) -> None:
    outcome(fhir.get("/fhir/$export"), 400, text="respond-async")
    outcome(fhir.get("/fhir/$export", params={"_type": "Banana"}, headers=ASYNC), 400, expression="_type")
    outcome(fhir.get("/fhir/$export", params={"_outputFormat": "text/csv"}, headers=ASYNC), 400, expression="_outputFormat")
    outcome(fhir.get("/fhir/$export", params={"_since": "yesterday"}, headers=ASYNC), 400, expression="_since")
    outcome(fhir.get("/fhir/$export", params={"_typeFilter": "Observation?code=x"}, headers=ASYNC), 400)
    outcome(fhir.get("/fhir/$export", headers={**ASYNC, "Accept": "text/html"}), 406)
    outcome(fhir.get("/fhir/$export-status/0123456789abcdef0123456789abcdef"), 404)
    outcome(fhir.get("/fhir/$export-status/not-a-job"), 404)
    outcome(fhir.delete("/fhir/$export-status/0123456789abcdef0123456789abcdef"), 404)
    outcome(fhir.get("/fhir/$export-file/0123456789abcdef0123456789abcdef/Patient.ndjson", headers={"Accept": NDJSON}), 404)


def test_file_names_cannot_escape_the_job_directory(fhir: TestClient) -> None:
    status_path = kick_off(fhir, _type="Patient")
    wait_manifest(fhir, status_path)
    job = status_path.rsplit("/", 1)[1]
    for name in ("..%2F..%2Fsecret.ndjson", "Patient.ndjson.part", "patient.ndjson", "Observation.ndjson"):
        response = fhir.get(f"/fhir/$export-file/{job}/{name}", headers={"Accept": NDJSON})
        assert response.status_code == 404, (name, response.status_code)


def test_cancel_deletes_the_job_and_its_files(fhir: TestClient, services: Services) -> None:
    status_path = kick_off(fhir)
    manifest = wait_manifest(fhir, status_path)
    job = status_path.rsplit("/", 1)[1]
    assert (services.settings.export_dir / job).is_dir()
    response = fhir.delete(status_path)
    assert response.status_code == 202
    outcome(fhir.get(status_path), 404)
    outcome(fhir.get(manifest["output"][0]["url"].removeprefix("http://testserver"), headers={"Accept": NDJSON}), 404)
    assert not (services.settings.export_dir / job).exists()


def test_jobs_are_scoped_to_the_callers_clinic(fhir: TestClient) -> None:
    other = {"X-Clinic-Id": "elsewhere"}
    status_path = kick_off_with(fhir, other)
    manifest = wait_manifest_with(fhir, status_path, other)
    assert manifest["output"] == []  # nothing of that clinic
    outcome(fhir.get(status_path, headers={"X-Clinic-Id": "riverbend"}), 404)  # another clinic's job is not found
    own = wait_manifest_with(fhir, kick_off_with(fhir, {"X-Clinic-Id": "riverbend"}), {"X-Clinic-Id": "riverbend"})
    assert own["output"]


def kick_off_with(client: TestClient, headers: dict) -> str:
    response = client.get("/fhir/$export", headers={**ASYNC, **headers})
    assert response.status_code == 202, response.text
    return response.headers["content-location"].removeprefix("http://testserver")


def wait_manifest_with(client: TestClient, path: str, headers: dict) -> dict:
    for _ in range(600):
        response = client.get(path, headers=headers)
        if response.status_code == 200:
            return response.json()
        assert response.status_code == 202, response.text
        time.sleep(0.05)
    raise AssertionError("export did not complete")


def test_capability_statement_lists_export(fhir: TestClient) -> None:
    statement = fhir.get("/fhir/metadata").json()
    assert "http://hl7.org/fhir/uv/bulkdata/CapabilityStatement/bulk-data" in statement["instantiates"]
    system_ops = {o["name"]: o["definition"] for o in statement["rest"][0]["operation"]}
    assert system_ops["export"] == "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"
    patient = next(r for r in statement["rest"][0]["resource"] if r["type"] == "Patient")
    assert {"name": "export", "definition": "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"} in patient["operation"]


def test_a_job_left_in_progress_by_a_dead_process_is_restarted(services: Services) -> None:
    store = ExportJobStore(services.engine, services.clock)
    params = ExportParameters("system", ("Patient",), None)
    store.create("0" * 32, request="http://x/fhir/$export?_type=Patient", parameters=params.to_json(), clinic_id=None, requester=None)
    dead = store.claim("dead-runner", stale_before=dt.datetime.now(dt.timezone.utc))
    assert dead is not None and dead.status == "in-progress"
    # a half-written file of the dead run
    (services.settings.export_dir / dead.id).mkdir(parents=True)
    (services.settings.export_dir / dead.id / "Patient.ndjson.part").write_bytes(b'{"resourceType":"Pat')
    # the lease is fresh: a new runner leaves it alone ...
    runner = ExportRunner(store, services.settings.export_dir, clock=services.clock)
    assert runner.run_pending() == 0
    # ... until the heartbeat is stale (process gone), then restarts it from scratch
    later = ExportRunner(store, services.settings.export_dir, clock=lambda: dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5))
    assert later.run_pending() == 1
    job = store.get(dead.id)
    assert job is not None and job.status == "completed" and job.runner == later.id
    assert orjson.loads(job.output or "") == [{"type": "Patient", "file": "Patient.ndjson", "count": 1}]
    assert sorted(p.name for p in (services.settings.export_dir / job.id).iterdir()) == ["Patient.ndjson"]
    # the dead runner cannot finish it any more
    assert not store.finish(job.id, "dead-runner", output="[]", transaction_time=dt.datetime.now(dt.timezone.utc))


def _copies(services: Services, count: int, prefix: str) -> None:
    """`count` more Observations (copies of a stored one with new ids)."""
    with services.uow() as uow:
        template = orjson.loads(uow.search.read_many([("Observation", _an_observation(services))])[0].json)
        items = [ResourceInput({**template, "id": f"{prefix}-{i:06d}"}, "riverbend") for i in range(count)]
        for start in range(0, count, 500):
            uow.resources.save_many(items[start : start + 500])
        uow.commit()


def _an_observation(services: Services) -> str:
    import sqlalchemy as sa

    with services.engine.connect() as connection:
        return connection.execute(sa.text("SELECT id FROM fhir_resource WHERE resource_type = 'Observation' LIMIT 1")).scalar_one()


def _peak_export(services: Services, directory: Path) -> tuple[int, int]:
    store = ExportJobStore(services.engine, services.clock)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        result = write_ndjson(store, ExportParameters("system", ("Observation",), None), directory, clinic_id=None,
                              clock=services.clock, batch_size=200)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return sum(result.counts.values()), peak


def test_export_memory_does_not_grow_with_the_export_size(services: Services, tmp_path: Path) -> None:
    _copies(services, 3000, "one")
    _peak_export(services, tmp_path / "warm")  # imports, statement caches
    n1, peak1 = _peak_export(services, tmp_path / "x1")
    _copies(services, 3000 + n1, "two")
    n2, peak2 = _peak_export(services, tmp_path / "x2")
    assert n2 >= 2 * n1
    data1 = (tmp_path / "x1" / "Observation.ndjson").stat().st_size
    data2 = (tmp_path / "x2" / "Observation.ndjson").stat().st_size
    assert data2 - data1 > 3_000_000  # the second export wrote MBs more ...
    assert peak2 - peak1 < 200_000, (peak1, peak2)  # ... with the same peak (one batch of 200 rows)
    assert peak2 < data2 / 3  # far less than what it wrote: nothing accumulates


def test_exported_lines_pass_the_hl7_validator(fhir: TestClient, assert_fhir_valid: Callable) -> None:
    manifest = wait_manifest(fhir, kick_off(fhir))
    checked = 0
    for item in manifest["output"]:
        for line in download(fhir, item["url"])[:2]:
            assert_fhir_valid(line)
            checked += 1
    assert checked >= 10
