"""The sync peers behave like the FHIR servers they stand for, and the fault proxy injects what it says.

HAPI peer: validating, per-resource only (no transactions, no conditional operations).
Medplum peer: conditional operations, atomic transactions with Medplum's limits.
Fault proxy: every fault type as an httpx client sees it; a lost response leaves the write on the peer.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.peers.fault_proxy import Fault, FaultProxy
from tests.peers.fixtures import LIMIT_EXT_PREFIX, PeerServer

PROJECT_ROOT = Path(__file__).resolve().parents[2]
MRN_SYSTEM = "https://riverbend-clinic.example.org/ids/mrn"
FHIR_JSON = {"Content-Type": "application/fhir+json", "Accept": "application/fhir+json"}

ProxyFactory = Callable[..., FaultProxy]


def _uid() -> str:
    return str(uuid.uuid4())


def us_core_patient(mrn: str, resource_id: str | None = None) -> dict[str, Any]:
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"]},
        "identifier": [{"system": MRN_SYSTEM, "value": mrn}],
        "name": [{"family": "Rivera", "given": ["Ana"]}],
        "gender": "female",
        "birthDate": "1984-03-02",
    }
    if resource_id is not None:
        patient["id"] = resource_id
    return patient


def phq9_observation(subject_ref: str, status: str | None = "final") -> dict[str, Any]:
    obs: dict[str, Any] = {
        "resourceType": "Observation",
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/observation-category",
                        "code": "survey",
                    }
                ]
            }
        ],
        "code": {"coding": [{"system": "http://loinc.org", "code": "44261-6"}]},
        "subject": {"reference": subject_ref},
        "effectiveDateTime": "2024-05-01T10:00:00Z",
        "valueInteger": 14,
    }
    if status is not None:
        obs["status"] = status
    return obs


def error_issues(outcome: dict[str, Any]) -> list[dict[str, Any]]:
    assert outcome.get("resourceType") == "OperationOutcome", outcome
    return [i for i in outcome.get("issue", []) if i.get("severity") in ("error", "fatal")]


# ---------------------------------------------------------------------------------------------- HAPI


def test_hapi_accepts_us_core_patient_put_with_client_id_and_reads_it_back(hapi_peer: PeerServer) -> None:
    mrn, pid = _uid(), _uid()
    with hapi_peer.client() as client:
        put = client.put(f"/Patient/{pid}", json=us_core_patient(mrn, pid))
        assert put.status_code == 201, put.text
        assert put.headers["ETag"] == 'W/"1"'
        read = client.get(f"/Patient/{pid}")
        assert read.status_code == 200
        assert read.json()["identifier"] == [{"system": MRN_SYSTEM, "value": mrn}]
        again = client.put(f"/Patient/{pid}", json=us_core_patient(mrn, pid))
        assert again.status_code == 200 and again.headers["ETag"] == 'W/"2"'
        assert client.get(f"/Patient/{pid}/_history/1").status_code == 200
        history = client.get(f"/Patient/{pid}/_history").json()
        assert history["type"] == "history" and len(history["entry"]) == 2
        found = client.get("/Patient", params={"identifier": f"{MRN_SYSTEM}|{mrn}"}).json()
        assert [e["resource"]["id"] for e in found.get("entry", [])] == [pid]
        by_id = client.get("/Patient", params={"_id": pid}).json()
        assert len(by_id.get("entry", [])) == 1
    assert hapi_peer.count("Patient", (MRN_SYSTEM, mrn)) == 1


def test_hapi_rejects_invalid_resource_with_422_and_operation_outcome(hapi_peer: PeerServer) -> None:
    oid = _uid()
    with hapi_peer.client() as client:
        r = client.put(f"/Observation/{oid}", json={**phq9_observation("Patient/x", status=None), "id": oid})
        assert r.status_code == 422, r.text
        errors = error_issues(r.json())
        assert any("Observation.status" in (i.get("diagnostics") or "") for i in errors), errors
        # LOINC is not checkable offline: never an error
        assert not any("loinc" in (i.get("diagnostics") or "").lower() for i in errors)
        assert client.get(f"/Observation/{oid}").status_code == 404


def test_hapi_passes_valid_observation_with_loinc_code(hapi_peer: PeerServer) -> None:
    oid = _uid()
    with hapi_peer.client() as client:
        r = client.put(f"/Observation/{oid}", json={**phq9_observation("Patient/x"), "id": oid})
        assert r.status_code == 201, r.text


def test_hapi_declares_no_transaction_and_no_conditional_support(hapi_peer: PeerServer) -> None:
    cs = hapi_peer.capability_statement()
    rest = cs["rest"][0]
    system_interactions = {i["code"] for i in rest.get("interaction", [])}
    assert not system_interactions & {"transaction", "batch"}
    resources = {r["type"]: r for r in rest["resource"]}
    for wanted in ("Patient", "Observation", "Provenance", "Claim", "QuestionnaireResponse", "Bundle"):
        res = resources[wanted]
        assert res["updateCreate"] is True
        assert res.get("conditionalCreate") is False and res.get("conditionalUpdate") is False
        assert {"read", "vread", "update", "history-instance", "search-type"} <= {i["code"] for i in res["interaction"]}
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": []}
    with hapi_peer.client() as client:
        # Connection: close -- Jetty may drop a keep-alive connection after refusing a request body
        assert 400 <= client.post("", json=bundle, headers={"Connection": "close"}).status_code < 500
        conditional = client.put("/Patient", params={"identifier": f"{MRN_SYSTEM}|x"}, json=us_core_patient("x"))
        assert 400 <= conditional.status_code < 500


def _golden_resources() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in sorted((PROJECT_ROOT / "mappings" / "cases").glob("*.expected.json")):
        data = json.loads(path.read_text())
        items = data if isinstance(data, list) else [e["resource"] for e in data.get("entry", [])] if data.get("resourceType") == "Bundle" else [data]
        out += [r for r in items if isinstance(r, dict) and r.get("id")]
    return out


def test_both_peers_accept_every_golden_mapping_output(hapi_peer: PeerServer, medplum_peer: PeerServer) -> None:
    """What the service will send (mappings/cases/*.expected.json) passes both peers' validation."""
    resources = _golden_resources()
    if not resources:
        pytest.skip("no golden mapping cases yet")
    rejected: list[str] = []
    for peer in (hapi_peer, medplum_peer):
        with peer.client() as client:
            for res in resources:
                r = client.put(f"/{res['resourceType']}/{res['id']}", json=res)
                if r.status_code not in (200, 201):
                    msgs = [i.get("diagnostics") or i.get("details", {}).get("text") for i in error_issues(r.json())]
                    rejected.append(f"{peer.name} {res['resourceType']}/{res['id']} {r.status_code}: {msgs[:3]}")
    assert not rejected, "\n".join(rejected)


# ------------------------------------------------------------------------------------------- Medplum


def test_medplum_transaction_resolves_urn_uuid_references(medplum_peer: PeerServer) -> None:
    mrn = _uid()
    patient_url = f"urn:uuid:{_uid()}"
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"fullUrl": patient_url, "resource": us_core_patient(mrn), "request": {"method": "POST", "url": "Patient"}},
            {
                "fullUrl": f"urn:uuid:{_uid()}",
                "resource": phq9_observation(patient_url),
                "request": {"method": "POST", "url": "Observation"},
            },
        ],
    }
    with medplum_peer.client() as client:
        r = client.post("", json=bundle)
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["type"] == "transaction-response"
        statuses = [e["response"]["status"] for e in body["entry"]]
        assert statuses == ["201", "201"]
        patient_id = body["entry"][0]["resource"]["id"]
        obs_id = body["entry"][1]["resource"]["id"]
        obs = client.get(f"/Observation/{obs_id}").json()
        assert obs["subject"]["reference"] == f"Patient/{patient_id}"
    assert medplum_peer.count("Patient", (MRN_SYSTEM, mrn)) == 1


def test_medplum_conditional_create_does_not_duplicate(medplum_peer: PeerServer) -> None:
    mrn = _uid()
    headers = {"If-None-Exist": f"identifier={MRN_SYSTEM}|{mrn}"}
    with medplum_peer.client() as client:
        first = client.post("/Patient", json=us_core_patient(mrn), headers=headers)
        second = client.post("/Patient", json=us_core_patient(mrn), headers=headers)
    assert first.status_code == 201, first.text
    assert "Location" in first.headers and "ETag" in first.headers
    assert second.status_code == 200, second.text
    assert second.json()["id"] == first.json()["id"]
    assert medplum_peer.count("Patient", (MRN_SYSTEM, mrn)) == 1


def test_medplum_conditional_update_on_identifier(medplum_peer: PeerServer) -> None:
    mrn = _uid()
    with medplum_peer.client() as client:
        params = {"identifier": f"{MRN_SYSTEM}|{mrn}"}
        created = client.put("/Patient", params=params, json=us_core_patient(mrn))
        assert created.status_code == 201, created.text
        changed = {**us_core_patient(mrn), "gender": "male"}
        updated = client.put("/Patient", params=params, json=changed)
        assert updated.status_code == 200, updated.text
        assert updated.json()["id"] == created.json()["id"]
        assert client.get(f"/Patient/{created.json()['id']}").json()["gender"] == "male"
        # update-as-create with a client id, then a plain update: 201, then 200
        pid = _uid()
        assert client.put(f"/Patient/{pid}", json=us_core_patient(_uid(), pid)).status_code == 201
        assert client.put(f"/Patient/{pid}", json=us_core_patient(_uid(), pid)).status_code == 200
    assert medplum_peer.count("Patient", (MRN_SYSTEM, mrn)) == 1


def test_medplum_declares_and_enforces_transaction_limits(medplum_peer: PeerServer) -> None:
    cs = medplum_peer.capability_statement()
    assert {"transaction", "batch"} <= {i["code"] for i in cs["rest"][0]["interaction"]}
    limits = medplum_peer.transaction_limits()
    assert limits == {"max-transaction-updates": 50, "max-transaction-entries-with-conditional": 8}
    assert all(e["url"].startswith(LIMIT_EXT_PREFIX) for e in cs["rest"][0]["extension"])

    system = f"urn:test:{_uid()}"

    def put_entry(i: int) -> dict[str, Any]:
        pid = _uid()
        patient = {**us_core_patient(str(i), pid), "identifier": [{"system": system, "value": str(i)}]}
        return {"resource": patient, "request": {"method": "PUT", "url": f"Patient/{pid}"}}

    with medplum_peer.client() as client:
        too_many = {"resourceType": "Bundle", "type": "transaction", "entry": [put_entry(i) for i in range(51)]}
        r = client.post("", json=too_many)
        assert r.status_code == 400, r.text
        assert error_issues(r.json())
        assert medplum_peer.count("Patient") >= 0 and medplum_peer.count("Patient", (system, "0")) == 0

        conditional = [
            {
                "resource": {**us_core_patient("c"), "identifier": [{"system": system, "value": f"c{i}"}]},
                "request": {"method": "POST", "url": "Patient", "ifNoneExist": f"identifier={system}|c{i}"},
            }
            for i in range(9)
        ]
        r = client.post("", json={"resourceType": "Bundle", "type": "transaction", "entry": conditional})
        assert r.status_code == 400, r.text

        at_limit = {"resourceType": "Bundle", "type": "transaction", "entry": [put_entry(i) for i in range(50)]}
        r = client.post("", json=at_limit)
        assert r.status_code == 200, r.text
        r = client.post("", json={"resourceType": "Bundle", "type": "transaction", "entry": conditional[:8]})
        assert r.status_code == 200, r.text
    assert medplum_peer.count("Patient", (system, "49")) == 1
    assert medplum_peer.count("Patient", (system, "c7")) == 1


def test_medplum_failed_transaction_is_rolled_back(medplum_peer: PeerServer) -> None:
    mrn = _uid()
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {"resource": us_core_patient(mrn), "request": {"method": "POST", "url": "Patient"}},
            {"resource": phq9_observation("Patient/x", status=None), "request": {"method": "POST", "url": "Observation"}},
        ],
    }
    with medplum_peer.client() as client:
        r = client.post("", json=bundle)
    assert r.status_code == 400, r.text
    assert medplum_peer.count("Patient", (MRN_SYSTEM, mrn)) == 0


def test_medplum_admin_count_and_reset(medplum_peer: PeerServer) -> None:
    mrn = _uid()
    with medplum_peer.client() as client:
        for _ in range(3):
            assert client.post("/Patient", json=us_core_patient(mrn)).status_code == 201
    assert medplum_peer.count("Patient", (MRN_SYSTEM, mrn)) == 3
    assert medplum_peer.count("Patient", f"{MRN_SYSTEM}|{mrn}") == 3
    assert medplum_peer.count("Patient", f"{MRN_SYSTEM}|nope") == 0
    medplum_peer.reset()
    assert medplum_peer.count("Patient") == 0


# ---------------------------------------------------------------------------------------- fault proxy


@pytest.mark.parametrize(("fault", "status"), [(Fault.STATUS_503, 503), (Fault.STATUS_429, 429)])
def test_proxy_injects_status_with_retry_after(
    medplum_peer: PeerServer, fault_proxy: ProxyFactory, fault: Fault, status: int
) -> None:
    proxy = fault_proxy(medplum_peer.base_url)
    proxy.configure(schedule=[fault], retry_after=7)
    mrn = _uid()
    with httpx.Client(base_url=proxy.base_url, headers=FHIR_JSON, timeout=10) as client:
        r = client.post("/Patient", json=us_core_patient(mrn))
        assert r.status_code == status
        assert r.headers["Retry-After"] == "7"
        assert r.json()["resourceType"] == "OperationOutcome"
        assert medplum_peer.count("Patient", (MRN_SYSTEM, mrn)) == 0  # never reached the peer
        assert client.post("/Patient", json=us_core_patient(mrn)).status_code == 201  # schedule used up
    assert proxy.counts()[fault] == 1 and proxy.counts()[Fault.PASS] == 1


def test_proxy_timeout_holds_longer_than_client_timeout(medplum_peer: PeerServer, fault_proxy: ProxyFactory) -> None:
    proxy = fault_proxy(medplum_peer.base_url)
    proxy.configure(schedule=[Fault.TIMEOUT], hold_seconds=3)
    mrn = _uid()
    with httpx.Client(base_url=proxy.base_url, headers=FHIR_JSON, timeout=0.5) as client:
        with pytest.raises(httpx.ReadTimeout):
            client.post("/Patient", json=us_core_patient(mrn))
    assert proxy.counts()[Fault.TIMEOUT] == 1
    assert medplum_peer.count("Patient", (MRN_SYSTEM, mrn)) == 0


def test_proxy_drops_connection_without_forwarding(medplum_peer: PeerServer, fault_proxy: ProxyFactory) -> None:
    proxy = fault_proxy(medplum_peer.base_url)
    proxy.configure(schedule=[Fault.DROP])
    mrn = _uid()
    with httpx.Client(base_url=proxy.base_url, headers=FHIR_JSON, timeout=5) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/Patient", json=us_core_patient(mrn))
    assert proxy.counts()[Fault.DROP] == 1 and proxy.forwarded == 0
    assert medplum_peer.count("Patient", (MRN_SYSTEM, mrn)) == 0


def test_proxy_slow_response_still_arrives(medplum_peer: PeerServer, fault_proxy: ProxyFactory) -> None:
    proxy = fault_proxy(medplum_peer.base_url)
    proxy.configure(schedule=[Fault.SLOW], slow_seconds=0.3)
    with httpx.Client(base_url=proxy.base_url, headers=FHIR_JSON, timeout=5) as client:
        started = time.monotonic()
        r = client.post("/Patient", json=us_core_patient(_uid()))
        assert r.status_code == 201
        assert time.monotonic() - started >= 0.3  # a lower bound only: the delay was injected
        # Location built by the peer from the Host header points back through the proxy
        assert r.headers["Location"].startswith(proxy.base_url)
    assert proxy.counts()[Fault.SLOW] == 1


def test_proxy_lost_response_commits_the_write_but_client_sees_an_error(
    medplum_peer: PeerServer, fault_proxy: ProxyFactory
) -> None:
    proxy = fault_proxy(medplum_peer.base_url)
    proxy.configure(schedule=[Fault.LOST_RESPONSE], methods={"POST", "PUT"})
    mrn, mrn2 = _uid(), _uid()
    with httpx.Client(base_url=proxy.base_url, headers=FHIR_JSON, timeout=5) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.post("/Patient", json=us_core_patient(mrn))
        assert medplum_peer.count("Patient", (MRN_SYSTEM, mrn)) == 1  # the write happened
        # a naive retry of a plain create duplicates ...
        assert client.post("/Patient", json=us_core_patient(mrn)).status_code == 201
        assert medplum_peer.count("Patient", (MRN_SYSTEM, mrn)) == 2
        # ... an idempotent PUT with the client id does not
        pid = _uid()
        proxy.configure(schedule=[Fault.LOST_RESPONSE])
        with pytest.raises(httpx.RemoteProtocolError):
            client.put(f"/Patient/{pid}", json=us_core_patient(mrn2, pid))
        assert client.put(f"/Patient/{pid}", json=us_core_patient(mrn2, pid)).status_code == 200
    assert medplum_peer.count("Patient", (MRN_SYSTEM, mrn2)) == 1
    assert proxy.counts()[Fault.LOST_RESPONSE] == 2


def test_proxy_lost_response_in_front_of_hapi(hapi_peer: PeerServer, fault_proxy: ProxyFactory) -> None:
    proxy = fault_proxy(hapi_peer.base_url)
    proxy.configure(schedule=[Fault.LOST_RESPONSE])
    mrn, pid = _uid(), _uid()
    with httpx.Client(base_url=proxy.base_url, headers=FHIR_JSON, timeout=30) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.put(f"/Patient/{pid}", json=us_core_patient(mrn, pid))
        assert hapi_peer.count("Patient", (MRN_SYSTEM, mrn)) == 1
        r = client.put(f"/Patient/{pid}", json=us_core_patient(mrn, pid))
        assert r.status_code == 200 and r.headers["ETag"] == 'W/"2"'
    assert hapi_peer.count("Patient", (MRN_SYSTEM, mrn)) == 1


def test_proxy_random_faults_are_reproducible_with_a_seed(medplum_peer: PeerServer, fault_proxy: ProxyFactory) -> None:
    probabilities = {Fault.STATUS_503: 0.3, Fault.STATUS_429: 0.2}

    def statuses(seed: int) -> list[int]:
        proxy = fault_proxy(medplum_peer.base_url, seed=seed)
        proxy.configure(probabilities=probabilities, methods={"GET"})
        with httpx.Client(base_url=proxy.base_url, headers=FHIR_JSON, timeout=5) as client:
            seen = [client.get("/Patient", params={"_count": "1"}).status_code for _ in range(30)]
        counts = proxy.counts()
        assert counts[Fault.STATUS_503] == seen.count(503) and counts[Fault.STATUS_429] == seen.count(429)
        assert counts[Fault.PASS] == seen.count(200)
        return seen

    first, second, other = statuses(42), statuses(42), statuses(43)
    assert first == second
    assert {503, 429, 200} <= set(first)
    assert first != other


def test_proxy_filters_by_method_and_stops_cleanly_with_a_request_in_flight(
    medplum_peer: PeerServer, fault_proxy: ProxyFactory
) -> None:
    proxy = fault_proxy(medplum_peer.base_url)
    proxy.configure(probabilities={Fault.TIMEOUT: 1.0}, methods={"POST"}, hold_seconds=60)
    with httpx.Client(base_url=proxy.base_url, headers=FHIR_JSON, timeout=5) as client:
        assert client.get("/metadata").status_code == 200  # GET is not eligible
    errors: list[BaseException] = []

    def held() -> None:
        try:
            httpx.post(f"{proxy.base_url}/Patient", json=us_core_patient(_uid()), headers=FHIR_JSON, timeout=30)
        except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
            errors.append(exc)

    t = threading.Thread(target=held)
    t.start()
    deadline = time.monotonic() + 5
    while proxy.counts()[Fault.TIMEOUT] == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    proxy.stop()
    t.join(10)
    assert not t.is_alive()
    assert errors and isinstance(errors[0], httpx.TransportError)
    assert proxy.counts()[Fault.TIMEOUT] == 1
