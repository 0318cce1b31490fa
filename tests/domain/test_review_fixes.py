"""Rules added after review of the domain tests: future trial ends, screen blood pressure
order, strict questionnaire answers and dose deviation guards."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from service.domain.dosing import dose_deviation
from service.domain.questionnaires import QuestionnaireAnswers
from service.domain.screening import ContraindicationScreen, MedicationTrial

from ._builders import T0, assert_rejected, screen, trial


def test_trial_cannot_end_after_it_was_recorded():
    assert_rejected(MedicationTrial, trial(end_date=dt.date(2026, 2, 1)), loc=(), match="end_date is after recorded_on")


def test_trial_duration_is_capped_at_the_assessment_date():
    record = MedicationTrial.model_validate(trial(end_date=None, start_date=dt.date(2026, 1, 1)))
    assert record.duration_weeks(dt.date(2026, 1, 15)) == Decimal("2.0")


def test_screen_systolic_must_exceed_diastolic():
    assert_rejected(ContraindicationScreen, screen(systolic_mmhg=80, diastolic_mmhg=80), loc=(), match="above diastolic")


@pytest.mark.parametrize("value", ["yes", "1", 1])
def test_cssrs_answers_must_be_json_booleans(value):
    payload = dict(
        id="q", clinic_id="c", patient_id="p", instrument="cssrs_screener", authored_at=T0, timepoint="baseline",
        answers={"1": value, "2": False, "6": False},
    )
    assert_rejected(QuestionnaireAnswers, payload)


def test_phq9_answers_reject_numeric_strings():
    payload = dict(
        id="q", clinic_id="c", patient_id="p", instrument="phq9", authored_at=T0, timepoint="baseline",
        answers={str(i): "1" for i in range(1, 10)},
    )
    assert_rejected(QuestionnaireAnswers, payload)


def test_dose_deviation_rejects_zero_prescription():
    with pytest.raises(ValueError):
        dose_deviation(Decimal(35), Decimal(70), Decimal(0))
