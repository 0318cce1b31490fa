"""No PHI and no secrets in logs: a full run (demo load, server at DEBUG with uvicorn access
logs, API calls on every door with identifiers in query strings, an error, the sync worker)
captures ALL output and scans it for the demo patient's names, MRN, birth date and phone, and for
tokens and secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.served import serving
from tests.tokens import token

PROJECT = Path(__file__).resolve().parents[2]
PHI = ("Jordan", "Rivera", "MRN-PT-0001", "1984-06-12", "555 010 0199", "5550100199")
SECRET = "sync-secret-never-logged"


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_full_run_logs_no_phi_and_no_secrets(database_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "LOG_LEVEL": "DEBUG", "AUTH_MODE": "dev", "RATE_LIMIT_PER_MINUTE": "0"}
    logs: list[str] = []
    demo = subprocess.run([sys.executable, "-m", "service", "demo"], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300)
    assert demo.returncode == 0, demo.stderr
    logs += [demo.stdout, demo.stderr]
    server_log = tmp_path / "server.log"
    admin = token(roles=("admin",), clinic="riverbend")
    root = token(roles=("admin",))
    with serving(env, server_log) as (base, _):
        h = {"Authorization": f"Bearer {admin}", "Accept": "application/fhir+json"}
        with httpx.Client(base_url=base, timeout=30) as http:
            patients = http.get("/fhir/Patient", params={"identifier": "MRN-PT-0001", "family": "Rivera"}, headers=h)
            assert patients.status_code == 200
            pid = patients.json()["entry"][0]["resource"]["id"]
            http.get(f"/fhir/Patient/{pid}/$everything", headers=h)
            http.get("/fhir/Patient", params={"birthdate": "1984-06-12", "name": "Jordan"}, headers=h)
            http.get("/api/v1/patients/pt-0001", params={"clinic_id": "riverbend"}, headers=h)
            http.get("/api/v1/coverage/precheck", params={"patient_id": "pt-0001", "service": "iv-ketamine-series"}, headers=h)
            http.put("/api/v1/patients/pt-0001", json={"clinic_id": "riverbend", "id": "pt-0001", "mrn": "MRN-PT-0001",
                                                       "family_name": "Rivera", "given_names": ["Jordan"], "birth_date": "1984-13-12",
                                                       "phone": "+1 555 010 0199"}, headers=h)  # a 422 echoing nothing to logs
            http.post("/fhir/Patient", content=b'{"name": [{"family": "Rivera"', headers={**h, "Content-Type": "application/fhir+json"})
            http.get("/fhir/Patient", headers={"Authorization": "Bearer " + admin[:-5] + "AAAAA"})  # a forged token
            http.put("/api/v1/sync/targets/log-check", json={"base_url": "http://127.0.0.1:9/fhir", "auth": "bearer", "token": SECRET},
                     headers={"Authorization": f"Bearer {root}"})
    logs.append(server_log.read_text())
    # the worker sends to the (unreachable) target for a while, retrying; its logs are captured too
    worker = subprocess.Popen([sys.executable, "-m", "service", "worker"], cwd=PROJECT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = worker.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        worker.terminate()
        out, _ = worker.communicate(timeout=15)
    logs.append(out)
    text = "\n".join(logs)
    assert "GET /fhir/Patient" in text, "the access log was captured"
    leaks = [phi for phi in PHI if phi in text]
    assert not leaks, leaks
    assert admin not in text and root not in text and admin.split(".")[1] not in text
    assert SECRET not in text
