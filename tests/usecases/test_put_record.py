"""put_record / get / list / preview / course_summary on every backend (fake FHIR builders)."""

from __future__ import annotations

import datetime as dt
from typing import Callable

import pytest

from service.store import SqlUnitOfWork
from service.store.outbox import Outbox
from service.usecases import (
    Conflict,
    IdempotencyConflict,
    InvalidRecord,
    MissingReference,
    NotFound,
    PutMode,
    UnknownCodeError,
    WriteStatus,
    course_summary,
    get_record,
    list_records,
    preview_fhir,
    put_record,
)
from service.usecases import codes
from tests import factories as f
from tests.store.support import table_contents, table_counts


@pytest.fixture
def uow(engine) -> Callable[[], SqlUnitOfWork]:
    return lambda: SqlUnitOfWork(engine)


@pytest.fixture
def seeded(uow) -> Callable[[], SqlUnitOfWork]:
    """Clinic, practitioner, location, patient and enrollment stored."""
    for kind in ("clinics", "practitioners", "locations", "patients", "enrollments"):
        put_record(uow(), kind, f.FACTORIES[kind]())
    return uow


def test_every_kind_is_created_then_unchanged_on_resend(uow, engine) -> None:
    for kind, payload in f.course():
        result = put_record(uow(), kind, payload)
        assert result.status is WriteStatus.CREATED, kind
        assert result.version == 1 and result.fhir, kind
    counts = table_counts(engine)
    assert counts["record"] == len(f.FACTORIES)
    assert counts["outbox"] == counts["fhir_resource"]
    for kind, payload in f.course():
        again = put_record(uow(), kind, payload)
        assert again.status is WriteStatus.UNCHANGED, kind
        assert again.version == 1
        assert [r.version_id for r in again.fhir] == [1] * len(again.fhir)
    assert table_counts(engine) == counts  # nothing new anywhere


def test_update_makes_a_new_version_and_outbox_rows_only_for_changed_resources(seeded, engine) -> None:
    put_record(seeded(), "vitals", f.vitals(session_id=...))
    before = table_counts(engine)
    updated = put_record(seeded(), "patients", f.patient(family_name="Smith"))
    assert (updated.status, updated.version) == (WriteStatus.UPDATED, 2)
    assert updated.record["family_name"] == "Smith"
    changed = [r for r in updated.fhir if r.version_id == 2]
    assert "Patient" in {r.resource_type for r in changed}
    after = table_counts(engine)
    assert after["outbox"] == before["outbox"] + len(changed)
    assert after["record_version"] == before["record_version"] + 1
    assert after["fhir_resource_history"] == before["fhir_resource_history"] + len(changed)
    assert after["fhir_resource"] == before["fhir_resource"]
    with SqlUnitOfWork(engine, write=False) as u:
        latest = u.outbox.after(before["outbox"], 1000)
    assert {(e.resource_type, e.version_id) for e in latest} == {(r.resource_type, 2) for r in changed}


def test_a_resource_the_record_no_longer_produces_is_deleted(seeded, engine) -> None:
    put_record(seeded(), "administration-sessions", f.administration_session())
    first = put_record(seeded(), "vitals", f.vitals())
    observations = [r for r in first.fhir if r.resource_type == "Observation"]
    assert len(observations) == 2  # blood pressure + heart rate
    second = put_record(seeded(), "vitals", f.vitals(heart_rate_bpm=...))
    assert len([r for r in second.fhir if r.resource_type == "Observation"]) == 1
    with SqlUnitOfWork(engine, write=False) as u:
        entries = u.outbox.after(0, 1000)
    deleted = [e for e in entries if e.deleted]
    assert len(deleted) == 1 and deleted[0].resource_type == "Observation"
    view = get_record(seeded(), "vitals", "vit-1", "clinic-1")
    assert sorted(r.id for r in view.fhir) == sorted(r.id for r in second.fhir)


def test_missing_references_are_named(seeded) -> None:
    with pytest.raises(MissingReference) as caught:
        put_record(seeded(), "administration-sessions", f.administration_session(enrollment_id="nope", location_id="gone"))
    assert {e.field for e in caught.value.errors} == {"enrollment_id", "location_id"}


def test_a_record_of_an_unknown_clinic_names_clinic_id(uow) -> None:
    with pytest.raises(MissingReference) as caught:
        put_record(uow(), "patients", f.patient())
    assert [e.field for e in caught.value.errors] == ["clinic_id"]


def test_a_reference_to_another_patients_record_is_rejected(seeded) -> None:
    put_record(seeded(), "patients", f.patient(id="pat-2", mrn="MRN-2"))
    with pytest.raises(MissingReference) as caught:
        put_record(seeded(), "questionnaire-responses", f.phq9(patient_id="pat-2"))
    assert [e.field for e in caught.value.errors] == ["enrollment_id"]


@pytest.mark.parametrize(
    ("kind", "payload", "fields"),
    [
        ("questionnaire-responses", f.phq9(answers={**f.phq9()["answers"], "9": 7}), {"answers.9"}),
        ("patients", f.patient(birth_date="2999-01-01", sex="x"), {"birth_date", "sex"}),
        ("patients", f.patient(nickname="JJ"), {"nickname"}),
        ("administration-sessions", f.administration_session(started_at="2026-03-02T09:00:00"), {"started_at"}),
        ("administration-sessions", f.administration_session(weight_kg=...), {"weight_kg"}),
        ("practitioners", f.practitioner(npi="1234567890"), {"npi"}),
        ("vitals", f.vitals(systolic_mmhg=70, diastolic_mmhg=80), {"systolic_mmhg"}),
        ("contraindication-screens", f.contraindication_screen(findings=[{"item": "pregnancy", "present": "maybe"}]),
         {"findings.0.present"}),
    ],
)
def test_invalid_records_name_each_offending_field(seeded, kind, payload, fields) -> None:
    with pytest.raises(InvalidRecord) as caught:
        put_record(seeded(), kind, payload)
    assert {e.field for e in caught.value.errors} == fields
    assert all(e.message for e in caught.value.errors)


def test_unknown_codes_are_rejected_with_their_field(seeded) -> None:
    with pytest.raises(UnknownCodeError) as caught:
        put_record(seeded(), "medication-trials", f.medication_trial(drug="snake_oil"))
    assert [e.field for e in caught.value.errors] == ["drug"]
    premed = {"drug": "not_a_drug", "dose_mg": 4, "route": "intravenous", "given_at": "2026-03-02T08:45:00-05:00"}
    with pytest.raises(UnknownCodeError) as caught:
        put_record(seeded(), "administration-sessions", f.administration_session(premedications=[premed]))
    assert [e.field for e in caught.value.errors] == ["premedications.0.drug"]
    with pytest.raises(UnknownCodeError) as caught:
        put_record(seeded(), "diagnoses", f.diagnosis(icd10="Z99.9"))
    assert [e.field for e in caught.value.errors] == ["icd10"]


def test_code_lookup_is_pluggable(seeded) -> None:
    codes.set_code_lookup(lambda table, key: key != "sertraline")
    try:
        with pytest.raises(UnknownCodeError):
            put_record(seeded(), "medication-trials", f.medication_trial())
    finally:
        codes.set_code_lookup(None)
    assert put_record(seeded(), "medication-trials", f.medication_trial()).status is WriteStatus.CREATED


def test_idempotency_key_replays_the_first_response_and_rejects_another_body(seeded, engine) -> None:
    first = put_record(seeded(), "diagnoses", f.diagnosis(), "key-1", mode=PutMode.CREATE)
    counts = table_counts(engine)
    again = put_record(seeded(), "diagnoses", f.diagnosis(), "key-1", mode=PutMode.CREATE)
    assert again.replayed and again.document() == first.document()
    assert again.status is WriteStatus.CREATED
    assert table_counts(engine) == counts
    with pytest.raises(IdempotencyConflict):
        put_record(seeded(), "diagnoses", f.diagnosis(note="changed"), "key-1", mode=PutMode.CREATE)


def test_create_mode_conflicts_on_different_content_and_returns_unchanged_on_same(seeded) -> None:
    put_record(seeded(), "diagnoses", f.diagnosis(), mode=PutMode.CREATE)
    assert put_record(seeded(), "diagnoses", f.diagnosis(), mode=PutMode.CREATE).status is WriteStatus.UNCHANGED
    with pytest.raises(Conflict):
        put_record(seeded(), "diagnoses", f.diagnosis(note="other"), mode=PutMode.CREATE)


def test_url_key_must_match_body_id_and_fills_a_missing_one(seeded) -> None:
    with pytest.raises(InvalidRecord) as caught:
        put_record(seeded(), "diagnoses", f.diagnosis(), key="other")
    assert caught.value.errors[0].field == "id"
    result = put_record(seeded(), "diagnoses", f.diagnosis(id=...), key="dx-9")
    assert result.record["id"] == "dx-9"


def test_a_failure_midway_leaves_every_table_unchanged(seeded, engine, monkeypatch) -> None:
    before = table_contents(engine)
    calls = {"n": 0}

    def failing_append(self, write):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        raise RuntimeError("outbox unavailable")

    monkeypatch.setattr(Outbox, "append", failing_append)
    with pytest.raises(RuntimeError):
        put_record(seeded(), "patients", f.patient(family_name="Changed"))
    with pytest.raises(RuntimeError):
        put_record(seeded(), "diagnoses", f.diagnosis(), "idem-1", mode=PutMode.CREATE)
    assert calls["n"] == 2  # the resources had been written when it failed
    assert table_contents(engine) == before


def test_get_and_list_with_paging(seeded) -> None:
    for number in range(5):
        put_record(seeded(), "diagnoses", f.diagnosis(id=f"dx-{number}"))
    view = get_record(seeded(), "diagnoses", "dx-3", "clinic-1")
    assert view.record["id"] == "dx-3" and view.fhir
    with pytest.raises(NotFound):
        get_record(seeded(), "diagnoses", "dx-404", "clinic-1")
    seen, cursor = [], None
    while True:
        page = list_records(seeded(), "diagnoses", clinic_id="clinic-1", patient_id="pat-1", limit=2, cursor=cursor)
        seen += [i.record["id"] for i in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [f"dx-{n}" for n in range(5)]
    assert list_records(seeded(), "diagnoses", clinic_id="clinic-1", patient_id="pat-9").items == []
    with pytest.raises(InvalidRecord):
        list_records(seeded(), "diagnoses", clinic_id="clinic-1", cursor="garbage!")


def test_preview_maps_without_storing(seeded, engine) -> None:
    counts = table_counts(engine)
    resources = preview_fhir("diagnoses", f.diagnosis(), uow_factory=seeded)
    assert resources and resources[0]["resourceType"] == "Basic"  # the fake builder's resource
    assert table_counts(engine) == counts


def test_course_summary(seeded) -> None:
    for kind, payload in f.course()[5:]:
        put_record(seeded(), kind, payload)
    put_record(seeded(), "medication-trials", f.medication_trial(id="trial-2", drug="escitalopram", start_date="2025-04-07",
                                                                  end_date="2025-06-30", daily_dose_mg=20))
    follow_ups = [
        ("phq-2", "2026-03-09T08:30:00-05:00", {"1": 0, "2": 1, "3": 1, "4": 1, "5": 1, "6": 1, "7": 1, "8": 1, "9": 1}),
        ("phq-3", "2026-03-16T08:30:00-05:00", {"1": 0, "2": 0, "3": 1, "4": 0, "5": 1, "6": 0, "7": 0, "8": 0, "9": 0}),
    ]
    for key, when, answers in follow_ups:
        put_record(seeded(), "questionnaire-responses", f.phq9(id=key, authored_at=when, answers=answers, timepoint="follow-up"))
    summary = course_summary(seeded(), "clinic-1", "pat-1", today=lambda: dt.date(2026, 4, 1))
    assert summary["sessions"][0]["dose_mg"] == 35
    assert summary["sessions"][0]["dose_mg_per_kg"] == 0.5
    assert summary["sessions"][0]["duration_minutes"] == 40
    assert summary["integration_sessions"][0]["modality"] == "ifs"
    phq = summary["scores"]["phq9"]
    assert [p["total"] for p in phq["responses"]] == [17, 8, 2]
    assert [p["status"] for p in phq["trajectory"]] == ["not-evaluable", "response", "remission"]
    assert summary["outcomes"]["phq9"]["status"] == "remission"
    assert phq["trend"] == "improving"
    assert any(flag["item"] == "phq9-item9-positive" and flag["record_id"] == "phq-2" for flag in summary["safety_flags"])
    assert summary["maintenance"]["decision"] == "continue-monthly"
    assert summary["treatment_resistance"]["met"] is True
    assert summary["treatment_resistance"]["adequate_failed_trials"] == ["trial-1", "trial-2"]
    with pytest.raises(NotFound):
        course_summary(seeded(), "clinic-1", "nobody")
