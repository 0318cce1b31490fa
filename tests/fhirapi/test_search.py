"""Search: every parameter kind, date prefixes with range semantics, paging stable under
inserts, _include, _summary=count, strict/lenient handling, POST _search, bad values."""

from __future__ import annotations

import datetime as dt

import pytest

from service.usecases.fhir_search import parse_date_value

from .conftest import CLINIC, new_observation, outcome

LOINC_HR = "http://loinc.org|8867-4"


def ids(bundle: dict, mode: str = "match") -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e.get("search", {}).get("mode") == mode]


def all_pages(fhir, url: str) -> list[dict]:
    pages = []
    while url:
        page = fhir.get(url).json()
        pages.append(page)
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
    return pages


def make_observations(fhir, patient_id: str, whens: list[str]) -> list[str]:
    out = []
    for n, when in enumerate(whens):
        response = fhir.post("/fhir/Observation", json=new_observation(patient_id, 60 + n, when), headers={"X-Clinic-Id": CLINIC})
        assert response.status_code == 201, response.text
        out.append(response.json()["id"])
    return out


def test_patient_code_date_search(fhir, demo) -> None:
    bundle = fhir.get(f"/fhir/Observation?patient={demo.patient_id}&code={LOINC_HR}&date=ge2026-03-02").json()
    assert bundle["total"] >= 1
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert resource["subject"]["reference"] == f"Patient/{demo.patient_id}"
        assert any(c["code"] == "8867-4" for c in resource["code"]["coding"])
        assert resource["effectiveDateTime"] >= "2026-03-02"
    same = fhir.get(f"/fhir/Observation?subject=Patient/{demo.patient_id}&code=8867-4&date=ge2026-03-02").json()
    assert ids(same) == ids(bundle)
    assert fhir.get(f"/fhir/Observation?patient=Group/{demo.patient_id}").json()["total"] == 0
    assert fhir.get("/fhir/Observation?code=|8867-4").json()["total"] == 0  # LOINC codes have a system
    assert fhir.get("/fhir/Observation?code=http://loinc.org|").json()["total"] >= bundle["total"]
    assert fhir.get("/fhir/Observation?code:not=http://loinc.org|8867-4").json()["total"] > 0


def test_token_identifier_status_category_encounter(fhir, demo) -> None:
    patient = fhir.get(f"/fhir/Patient/{demo.patient_id}").json()
    ident = patient["identifier"][0]
    found = fhir.get(f"/fhir/Patient?identifier={ident['system']}|{ident['value']}").json()
    assert ids(found) == [demo.patient_id]
    assert fhir.get(f"/fhir/Patient?identifier={ident['value']}").json()["total"] == 1
    assert fhir.get("/fhir/Patient?identifier=urn:x|nope").json()["total"] == 0
    assert fhir.get(f"/fhir/Patient?_id={demo.patient_id},other").json()["total"] == 1
    final = fhir.get("/fhir/Observation?status=final&_summary=count").json()["total"]
    everything = fhir.get("/fhir/Observation?_summary=count").json()["total"]
    assert 0 < final <= everything
    vital = fhir.get("/fhir/Observation?category=vital-signs&_count=200").json()
    assert vital["total"] > 0 and all(
        any(c["code"] == "vital-signs" for cat in e["resource"]["category"] for c in cat["coding"]) for e in vital["entry"]
    )
    encounter_ref = next(e["resource"]["encounter"]["reference"] for e in vital["entry"] if "encounter" in e["resource"])
    by_encounter = fhir.get(f"/fhir/Observation?encounter={encounter_ref}&_count=200").json()
    assert by_encounter["total"] > 0
    assert all(e["resource"]["encounter"]["reference"] == encounter_ref for e in by_encounter["entry"])
    bare = fhir.get(f"/fhir/Observation?encounter={encounter_ref.split('/')[1]}&_count=200").json()
    assert ids(bare) == ids(by_encounter)


def test_status_and_status_not_read_the_status_column(fhir, demo) -> None:
    """`status` is answered from the row's status column (no status tokens are stored):
    `status:not` keeps every other status, several codes OR-ed; a code with a system matches
    nothing (FHIR status codes are searched without one here), so `:not` with it excludes nothing."""
    amended = fhir.post("/fhir/Observation", json=new_observation(demo.patient_id, 61, "2031-01-01T10:00:00Z", status="amended"),
                        headers={"X-Clinic-Id": CLINIC})
    assert amended.status_code == 201, amended.text
    amended_id = amended.json()["id"]
    count = lambda query: fhir.get(f"/fhir/Observation?{query}&_summary=count").json()["total"]  # noqa: E731
    everything, final = count("_lastUpdated=gt2000-01-01"), count("status=final")
    assert final > 0 and count("status=amended") == 1
    assert count("status:not=final") == everything - final
    assert ids(fhir.get(f"/fhir/Observation?patient={demo.patient_id}&status:not=final&_count=200").json()) == [amended_id]
    assert count("status:not=final,amended") == everything - final - 1
    assert count("status=final,amended") == final + 1
    assert count("status:not=http://hl7.org/fhir/observation-status|final") == everything
    assert count("status=http://hl7.org/fhir/observation-status|final") == 0


def test_date_prefixes_follow_range_semantics(fhir, demo) -> None:
    made = make_observations(fhir, demo.patient_id, ["2030-01-15", "2030-02", "2030-02-10T12:00:00Z", "2030-03-01T00:00:00Z"])
    jan15, feb, feb10, mar1 = made
    base = f"/fhir/Observation?patient={demo.patient_id}&code={LOINC_HR}&_count=100&date="

    def q(value: str) -> set[str]:
        return set(ids(fhir.get(base + value).json())) & set(made)

    assert q("2030-02") == {feb, feb10}  # eq: contained in February
    assert q("eq2030-02-10") == {feb10}  # February (whole month) is not inside Feb 10
    assert q("ne2030-02") == {jan15, mar1}
    assert q("lt2030-02-10") == {jan15, feb}  # February starts before Feb 10
    assert q("le2030-02-10") == {jan15, feb, feb10}
    assert q("gt2030-02-10") == {feb, mar1}  # February ends after Feb 10
    assert q("ge2030-02-10") == {feb, feb10, mar1}
    assert q("sa2030-01-31") == {feb, feb10, mar1}
    assert q("eb2030-02-01") == {jan15}
    assert q("ge2030-02-01&date=lt2030-03") == {feb, feb10}
    assert q("2030-02-10T12:00:00Z") == {feb10}
    assert q("2030-02-10T07:00:00-05:00") == {feb10}
    assert q("lt2030-01-15,gt2030-02-28") == {mar1}
    assert q("ap2030-02-10") == {feb, feb10}


@pytest.mark.parametrize("bad", ["notadate", "xx2026", "2026-13", "2026-02-30", "ge", "2026-01-01T25:00Z", "ge2026-1-1"])
def test_bad_date_values_are_400(fhir, bad: str) -> None:
    outcome(fhir.get(f"/fhir/Observation?date={bad}"), 400, text="date")


def test_parse_date_value_precision() -> None:
    match = parse_date_value("2026-03-02T10:00", "date")
    assert match.end - match.start == dt.timedelta(minutes=1, microseconds=-1)
    assert parse_date_value("le2026", "date").prefix == "le"


def test_last_updated_and_sort(fhir, demo) -> None:
    everything = fhir.get("/fhir/Observation?_summary=count").json()["total"]
    assert fhir.get("/fhir/Observation?_lastUpdated=gt2000-01-01&_summary=count").json()["total"] == everything
    assert fhir.get("/fhir/Observation?_lastUpdated=lt2000-01-01").json()["total"] == 0
    by_date = fhir.get(f"/fhir/Observation?patient={demo.patient_id}&_sort=-date&_count=300").json()
    dates = [e["resource"].get("effectiveDateTime", "") for e in by_date["entry"]]
    moments = [dt.datetime.fromisoformat(d.replace("Z", "+00:00")) for d in dates if "T" in d]
    assert moments == sorted(moments, reverse=True)
    by_id = ids(fhir.get("/fhir/Observation?_sort=_id&_count=300").json())
    assert by_id == sorted(by_id)
    updated = fhir.get("/fhir/Observation?_sort=_lastUpdated&_count=300").json()
    stamps = [e["resource"]["meta"]["lastUpdated"] for e in updated["entry"]]
    assert stamps == sorted(stamps)
    outcome(fhir.get("/fhir/Observation?_sort=name"), 400)
    outcome(fhir.get("/fhir/Practitioner?_sort=date"), 400)


@pytest.mark.parametrize("sort", ["", "&_sort=date", "&_sort=-date", "&_sort=_lastUpdated", "&_sort=-_id"])
def test_paging_is_complete_and_stable_under_inserts(fhir, demo, sort: str) -> None:
    url = f"/fhir/Observation?patient={demo.patient_id}&_count=7{sort}"
    before = [i for page in all_pages(fhir, url) for i in ids(page)]
    assert len(before) == len(set(before)) == fhir.get(url).json()["total"]
    first = fhir.get(url).json()
    second_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    second = fhir.get(second_url).json()
    # inserts while a client is paging (ids sort anywhere, dates at both ends) ...
    added = make_observations(fhir, demo.patient_id, ["1999-01-01", "2099-01-01", "2026-03-03", "2026-03-04"])
    # ... never make it see a resource twice or miss one that existed when it started
    rest = [i for page in all_pages(fhir, second_url) for i in ids(page)]
    seen = ids(first) + rest
    assert len(seen) == len(set(seen))
    assert set(before) <= set(seen) <= set(before) | set(added)
    previous = next(link["url"] for link in second["link"] if link["relation"] == "previous")
    assert set(ids(fhir.get(previous).json())) <= set(ids(first)) | set(added)
    assert not any(link["relation"] == "previous" for link in first["link"])


def test_previous_link_returns_the_page_before(fhir, demo) -> None:
    url = f"/fhir/Observation?patient={demo.patient_id}&_count=5&_sort=-date"
    pages = all_pages(fhir, url)
    assert len(pages) >= 3
    previous = next(link["url"] for link in pages[2]["link"] if link["relation"] == "previous")
    assert ids(fhir.get(previous).json()) == ids(pages[1])


def test_include_and_summary_count(fhir, demo) -> None:
    bundle = fhir.get(
        f"/fhir/Observation?patient={demo.patient_id}&_count=5&_include=Observation:patient&_include=Observation:encounter"
    ).json()
    included = {(e["resource"]["resourceType"], e["resource"]["id"]) for e in bundle["entry"] if e["search"]["mode"] == "include"}
    assert ("Patient", demo.patient_id) in included
    assert {t for t, _ in included} <= {"Patient", "Encounter"}
    administrations = fhir.get("/fhir/MedicationAdministration?_include=MedicationAdministration:medication&_count=3").json()
    assert {e["resource"]["resourceType"] for e in administrations["entry"] if e["search"]["mode"] == "include"} == {"Medication"}
    count = fhir.get(f"/fhir/Observation?patient={demo.patient_id}&_summary=count").json()
    assert count["total"] > 0 and "entry" not in count
    assert fhir.get("/fhir/Observation?_count=0").json().get("entry") is None
    assert len(fhir.get("/fhir/Observation?_count=5000").json()["entry"]) <= 1000


def test_unknown_parameters_lenient_and_strict(fhir) -> None:
    lenient = fhir.get("/fhir/Observation?bogus=1&_count=1").json()
    outcomes = [e for e in lenient["entry"] if e["search"]["mode"] == "outcome"]
    assert outcomes and "bogus" in outcomes[0]["resource"]["issue"][0]["diagnostics"]
    assert outcomes[0]["resource"]["issue"][0]["severity"] == "warning"
    self_link = next(link["url"] for link in lenient["link"] if link["relation"] == "self")
    assert "bogus" not in self_link and "_count=1" in self_link
    outcome(fhir.get("/fhir/Observation?bogus=1", headers={"Prefer": "handling=strict"}), 400, text="bogus")
    outcome(fhir.get("/fhir/Observation?_include=Observation:bogus", headers={"Prefer": "handling=strict"}), 400)
    assert fhir.get("/fhir/Observation?bogus=1", headers={"Prefer": "handling=lenient"}).status_code == 200


@pytest.mark.parametrize(
    "query",
    ["_count=abc", "_count=-5", "code:text=x", "patient:Group=x", "date:missing=true", "_cursor=!!!", "_total=maybe",
     "patient=Patient/x/_history/1", "_id:not=x"],
)
def test_bad_search_values_are_400(fhir, query: str) -> None:
    outcome(fhir.get(f"/fhir/Observation?{query}"), 400)


def test_post_search(fhir, demo) -> None:
    form = {"patient": demo.patient_id, "code": LOINC_HR}
    posted = fhir.post("/fhir/Observation/_search", data=form)
    assert posted.status_code == 200
    got = fhir.get(f"/fhir/Observation?patient={demo.patient_id}&code={LOINC_HR}").json()
    assert ids(posted.json()) == ids(got)
    outcome(fhir.post("/fhir/Observation/_search", content=b'{"a":1}', headers={"Content-Type": "application/json"}), 415)
    outcome(fhir.get("/fhir/Unicorn?x=1"), 404)
