"""Bulk import: NDJSON and CSV with a bad row in the middle -> good rows stored, the bad row
reported with field names, nothing partial."""

from __future__ import annotations

import orjson
import pytest

from service.domain.patient import Patient
from service.domain.questionnaires import QuestionnaireAnswers
from service.store import SqlUnitOfWork
from service.usecases import get_record, import_rows, parse_rows, put_record
from service.usecases.errors import NotFound
from service.usecases.importing import unflatten
from tests import factories as f


@pytest.fixture
def uow(engine):
    factory = lambda: SqlUnitOfWork(engine)  # noqa: E731
    for kind in ("clinics", "practitioners", "locations", "patients", "enrollments"):
        put_record(factory(), kind, f.FACTORIES[kind]())
    return factory


def test_ndjson_with_a_bad_row_in_the_middle(uow) -> None:
    lines = [
        orjson.dumps(f.diagnosis(id="dx-a")).decode(),
        orjson.dumps(f.diagnosis(id="dx-b", icd10="F33.2", recorded_on="not-a-date", bogus=1)).decode(),
        "{not json",
        "",
        orjson.dumps(f.diagnosis(id="dx-c")).decode(),
        orjson.dumps(f.diagnosis(id="dx-a")).decode(),
    ]
    report = import_rows(uow, "diagnoses", parse_rows("\n".join(lines), "ndjson", "diagnoses"))
    statuses = [(r.row, r.status) for r in report.rows]
    assert statuses == [(1, "created"), (2, "error"), (3, "error"), (5, "created"), (6, "unchanged")]
    assert {e.field for e in report.rows[1].errors} == {"recorded_on", "bogus"}
    assert report.counts() == {"created": 2, "updated": 0, "unchanged": 1, "error": 2}
    with pytest.raises(NotFound):
        get_record(uow(), "diagnoses", "dx-b", "clinic-1")
    assert get_record(uow(), "diagnoses", "dx-c", "clinic-1").version == 1


def test_csv_patients_with_lists_nested_fields_and_a_bad_row(uow) -> None:
    text = (
        "id,clinic_id,mrn,family_name,given_names,birth_date,sex,address.city,address.state,phone\n"
        "p-10,clinic-1,MRN-10,Ng,Kim;Lee,1990-01-02,female,Boston,MA,\n"
        "p-11,clinic-1,MRN-11,Roe,Sam,1990-13-40,robot,,,\n"
        "p-12,clinic-1,MRN-12,Poe,Al,1970-05-06,male,,,+1 555 010 1000\n"
    )
    report = import_rows(uow, "patients", parse_rows(text.encode(), "csv", "patients"))
    assert [(r.row, r.status, r.id) for r in report.rows] == [(1, "created", "p-10"), (2, "error", "p-11"), (3, "created", "p-12")]
    assert {e.field for e in report.rows[1].errors} == {"birth_date", "sex"}
    stored = get_record(uow(), "patients", "p-10", "clinic-1").record
    assert stored["given_names"] == ["Kim", "Lee"]
    assert stored["address"]["city"] == "Boston"
    assert stored["phone"] is None  # empty cell = absent


def test_csv_questionnaire_answers_columns(uow) -> None:
    header = "id,clinic_id,patient_id,instrument,authored_at,timepoint," + ",".join(f"answers.{i}" for i in range(1, 10))
    good = "phq-a,clinic-1,pat-1,phq9,2026-03-02T08:30:00-05:00,baseline,3,3,2,2,2,2,2,1,0"
    bad = "phq-b,clinic-1,pat-1,phq9,2026-03-09T08:30:00-05:00,follow-up,1,1,1,1,1,1,1,1,9"
    text = "\n".join([header, good, bad, good.replace("phq-a", "phq-c")]) + "\n"
    report = import_rows(uow, "questionnaire-responses", parse_rows(text, "csv", "questionnaire-responses"))
    assert [r.status for r in report.rows] == ["created", "error", "created"]
    assert [e.field for e in report.rows[1].errors] == ["answers.9"]
    stored = get_record(uow(), "questionnaire-responses", "phq-a", "clinic-1").record
    assert stored["answers"]["1"] == 3 and stored["answers"]["9"] == 0


def test_unflatten_is_generic() -> None:
    row = {"answers.1": "2", "answers.2": "true", "given_names": "A; B", "premedications.0.drug": "ondansetron", "x": ""}
    assert unflatten({k: v for k, v in row.items() if k.startswith("answers")}, QuestionnaireAnswers) == {
        "answers": {"1": 2, "2": True}
    }
    assert unflatten({"given_names": "A; B", "x": ""}, Patient) == {"given_names": ["A", "B"]}
    from service.domain.administration import AdministrationSession

    assert unflatten(
        {"premedications.0.drug": "ondansetron", "premedications.0.dose_mg": "4", "premedications.1.drug": "x"},
        AdministrationSession,
    ) == {"premedications": [{"drug": "ondansetron", "dose_mg": "4"}, {"drug": "x"}]}
