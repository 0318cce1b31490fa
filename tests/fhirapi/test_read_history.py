"""read, vread, instance and type history, ETag/Last-Modified, 404/410, for every type."""

from __future__ import annotations

import pytest

from service.usecases.fhir_types import READ_TYPES

from .conftest import CLINIC, FHIR_JSON, new_patient, outcome


def test_every_stored_type_can_be_searched_and_read(fhir) -> None:
    seen = set()
    for resource_type in READ_TYPES:
        bundle = fhir.get(f"/fhir/{resource_type}?_count=1").json()
        assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
        for entry in bundle.get("entry", []):
            resource = entry["resource"]
            response = fhir.get(f"/fhir/{resource_type}/{resource['id']}")
            assert response.status_code == 200
            assert response.headers["content-type"].startswith(FHIR_JSON)
            assert response.headers["etag"] == f'W/"{resource["meta"]["versionId"]}"'
            assert "GMT" in response.headers["last-modified"]
            assert response.json() == resource
            assert entry["fullUrl"].endswith(f"/fhir/{resource_type}/{resource['id']}")
            seen.add(resource_type)
    assert seen >= set(READ_TYPES) - {"Coverage"}


def test_read_unknown_type_id_and_bad_id(fhir) -> None:
    outcome(fhir.get("/fhir/Unicorn/1"), 404)
    outcome(fhir.get("/fhir/Patient/does-not-exist"), 404, text="not known")
    outcome(fhir.get("/fhir/Patient/" + "x" * 65), 400)
    outcome(fhir.get("/fhir/Patient/bad$id"), 400)


def test_vread_history_and_deleted_is_gone(fhir) -> None:
    headers = {"X-Clinic-Id": CLINIC}
    created = fhir.post("/fhir/Patient", json=new_patient(), headers=headers)
    assert created.status_code == 201
    pid = created.json()["id"]
    body = {**created.json(), "gender": "female"}
    updated = fhir.put(f"/fhir/Patient/{pid}", json=body, headers=headers)
    assert updated.status_code == 200 and updated.headers["etag"] == 'W/"2"'
    v1 = fhir.get(f"/fhir/Patient/{pid}/_history/1")
    assert v1.status_code == 200 and v1.json()["gender"] == "other" and v1.headers["etag"] == 'W/"1"'
    assert fhir.get(f"/fhir/Patient/{pid}/_history/2").json()["gender"] == "female"
    outcome(fhir.get(f"/fhir/Patient/{pid}/_history/9"), 404)
    outcome(fhir.get(f"/fhir/Patient/{pid}/_history/x"), 400)
    assert fhir.delete(f"/fhir/Patient/{pid}").status_code == 204
    outcome(fhir.get(f"/fhir/Patient/{pid}"), 410)
    outcome(fhir.get(f"/fhir/Patient/{pid}/_history/3"), 410)
    history = fhir.get(f"/fhir/Patient/{pid}/_history").json()
    assert history["type"] == "history" and history["total"] == 3
    assert [e["request"]["method"] for e in history["entry"]] == ["DELETE", "PUT", "POST"]
    assert "resource" not in history["entry"][0]
    assert [e["response"]["etag"] for e in history["entry"]] == ['W/"3"', 'W/"2"', 'W/"1"']
    outcome(fhir.get("/fhir/Patient/nobody/_history"), 404)
    outcome(fhir.get(f"/fhir/Patient/{pid}/_history?bogus=1"), 400)


def test_type_history_pages_newest_first(fhir) -> None:
    url = "/fhir/Observation/_history?_count=40"
    seen, stamps = [], []
    while url:
        bundle = fhir.get(url).json()
        assert bundle["type"] == "history"
        for entry in bundle.get("entry", []):
            seen.append((entry["resource"]["id"], entry["resource"]["meta"]["versionId"]))
            stamps.append(entry["response"]["lastModified"])
        url = next((link["url"] for link in bundle["link"] if link["relation"] == "next"), None)
    assert len(seen) == len(set(seen)) == fhir.get("/fhir/Observation?_summary=count").json()["total"]
    assert stamps == sorted(stamps, reverse=True)
    since = fhir.get("/fhir/Observation/_history?_since=2999-01-01T00:00:00Z").json()
    assert "entry" not in since
    outcome(fhir.get("/fhir/Observation/_history?_since=never"), 400)
    outcome(fhir.get("/fhir/Observation/_history?_count=-1"), 400)
    outcome(fhir.get("/fhir/Observation/_history?_cursor=garbage"), 400)


@pytest.mark.parametrize("fmt", ["xml", "application/fhir+xml", "text/turtle"])
def test_unsupported_format_is_406(fhir, fmt: str) -> None:
    outcome(fhir.get(f"/fhir/Patient?_format={fmt}"), 406)


def test_accept_negotiation(fhir) -> None:
    outcome(fhir.get("/fhir/metadata", headers={"Accept": "application/fhir+xml"}), 406)
    assert fhir.get("/fhir/metadata", headers={"Accept": "application/json"}).status_code == 200
    assert fhir.get("/fhir/metadata", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}).status_code == 200
    assert fhir.get("/fhir/metadata?_format=json").status_code == 200
