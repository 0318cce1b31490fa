"""Eligibility: treatment resistance, contraindications/cautions and pre-dose blood pressure.

Sources:
- TRD: no adequate response to >= 2 adequate antidepressant trials in the current episode
  (program.md "Who it is for"; operational definition of IV-ketamine trials, Fava 2020 [S34];
  SPRAVATO label population [S28]); adequate = therapeutic dose and >= 6 weeks ("typically
  6-8 weeks each", program.md); intolerance is not an adequate trial.
- Contraindications vs cautions: program.md step 1; clinical-coding.md §5.3 ([S35], [S24]).
- Pre-dose BP: SPRAVATO label cautions above ~140/90 ([S35], V2), configurable per clinic.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from service.domain.eligibility import (
    BloodPressureThreshold,
    assess_trial,
    pre_dose_bp_flag,
    screen_flags,
    treatment_resistance,
)
from service.domain.screening import (
    CAUTIONS,
    CONTRAINDICATIONS,
    ContraindicationScreen,
    MedicationTrial,
    ScreenItem,
)

from ._builders import screen, trial

AS_OF = dt.date(2026, 1, 15)
START = dt.date(2025, 1, 1)


def make_trial(**overrides: object) -> MedicationTrial:
    return MedicationTrial.model_validate(trial(**overrides))


def days_after_start(days: int) -> dt.date:
    return START + dt.timedelta(days=days)


# --------------------------------------------------------------------------- trial adequacy


@pytest.mark.parametrize(
    ("days", "weeks", "adequate"),
    [
        (41, Decimal("5.9"), False),  # 5.86 weeks -> 5.9 < 6
        (42, Decimal("6.0"), True),  # exactly 6 weeks
        (43, Decimal("6.1"), True),
        (56, Decimal("8.0"), True),
        (0, Decimal("0.0"), False),
    ],
)
def test_trial_duration_boundary(days: int, weeks: Decimal, adequate: bool) -> None:
    """Adequate trial lasts >= 6 weeks (program.md: 'typically 6-8 weeks each')."""
    t = make_trial(end_date=days_after_start(days))
    assert t.duration_weeks(AS_OF) == weeks
    assessment = assess_trial(t, AS_OF)
    assert assessment.adequate is adequate
    assert assessment.failed is True
    if not adequate:
        assert any("shorter than 6" in r for r in assessment.reasons)


@pytest.mark.parametrize(
    ("overrides", "adequate", "failed", "reason"),
    [
        (dict(), True, True, None),
        (dict(outcome="partial-response"), True, True, None),  # partial response is a failure
        (dict(outcome="response"), True, False, "not a failure"),
        (dict(outcome="unknown"), True, False, "not a failure"),
        (dict(outcome="intolerance"), False, False, "intolerance"),
        (dict(adequate_dose=False), False, True, "dose not therapeutic"),
        (dict(current_episode=False), False, True, "current episode"),
    ],
)
def test_assess_trial(overrides: dict, adequate: bool, failed: bool, reason: str | None) -> None:
    a = assess_trial(make_trial(**overrides), AS_OF)
    assert (a.trial_id, a.adequate, a.failed) == ("tr-1", adequate, failed)
    if reason is None:
        assert a.reasons == ()
    else:
        assert any(reason in r for r in a.reasons), a.reasons


def test_ongoing_trial_duration_uses_as_of() -> None:
    """A trial still being taken (no end_date) is measured up to the assessment date."""
    t = make_trial(end_date=None, start_date=dt.date(2026, 1, 1), recorded_on=dt.date(2026, 1, 1))
    assert t.duration_weeks(dt.date(2026, 2, 11)) == Decimal("5.9")  # 41 days
    assert assess_trial(t, dt.date(2026, 2, 11)).adequate is False
    assert t.duration_weeks(dt.date(2026, 2, 12)) == Decimal("6.0")  # 42 days
    assert assess_trial(t, dt.date(2026, 2, 12)).adequate is True


def test_min_weeks_is_configurable() -> None:
    t = make_trial(end_date=days_after_start(49))  # 7.0 weeks
    assert assess_trial(t, AS_OF, min_weeks=Decimal(8)).adequate is False
    assert assess_trial(t, AS_OF, min_weeks=Decimal(7)).adequate is True


# --------------------------------------------------------------------------- TRD


def trials(*specs: dict) -> list[MedicationTrial]:
    out = []
    for i, spec in enumerate(specs):
        start = START + dt.timedelta(days=100 * i)
        base = dict(id=f"tr-{i + 1}", start_date=start, end_date=start + dt.timedelta(weeks=8))
        out.append(make_trial(**(base | spec)))
    return out


@pytest.mark.parametrize(
    ("specs", "met", "counted"),
    [
        pytest.param([{}, {}], True, ("tr-1", "tr-2"), id="exactly-two-failed"),
        pytest.param([{}], False, ("tr-1",), id="one-failed"),
        pytest.param([], False, (), id="none"),
        pytest.param([{}, {}, {}], True, ("tr-1", "tr-2", "tr-3"), id="three-failed"),
        pytest.param([{}, {"outcome": "intolerance"}], False, ("tr-1",), id="intolerance-not-counted"),
        pytest.param([{}, {"outcome": "response"}], False, ("tr-1",), id="response-not-failure"),
        pytest.param([{}, {"adequate_dose": False}], False, ("tr-1",), id="inadequate-dose"),
        pytest.param([{}, {"current_episode": False}], False, ("tr-1",), id="previous-episode"),
        pytest.param([{}, {"outcome": "unknown"}], False, ("tr-1",), id="unknown-outcome"),
        pytest.param([{}, {"outcome": "partial-response"}], True, ("tr-1", "tr-2"), id="partial-is-failure"),
        pytest.param(
            [{}, {"end_date": START + dt.timedelta(days=100 + 41)}], False, ("tr-1",), id="second-5.9-weeks"
        ),
        pytest.param(
            [{}, {"end_date": START + dt.timedelta(days=100 + 42)}], True, ("tr-1", "tr-2"), id="second-6.0-weeks"
        ),
    ],
)
def test_treatment_resistance(specs: list[dict], met: bool, counted: tuple[str, ...]) -> None:
    """TRD = >= 2 adequate failed trials in the current episode (program.md; Fava 2020 [S34])."""
    result = treatment_resistance(trials(*specs), AS_OF)
    assert result.met is met
    assert result.adequate_failed_trials == counted
    assert len(result.assessments) == len(specs)


def test_treatment_resistance_ongoing_trial_uses_as_of() -> None:
    """An ongoing second trial counts once it has run 6 weeks by the as-of date."""
    done = make_trial(id="tr-1")
    ongoing = make_trial(
        id="tr-2", start_date=dt.date(2026, 1, 1), end_date=None, recorded_on=dt.date(2026, 1, 1)
    )
    assert treatment_resistance([done, ongoing], dt.date(2026, 2, 11)).met is False
    assert treatment_resistance([done, ongoing], dt.date(2026, 2, 12)).met is True


def test_treatment_resistance_assessments_in_start_order() -> None:
    ts = trials({}, {}, {})
    result = treatment_resistance(list(reversed(ts)), AS_OF)
    assert [a.trial_id for a in result.assessments] == ["tr-1", "tr-2", "tr-3"]


# --------------------------------------------------------------------------- blood pressure


@pytest.mark.parametrize(
    ("systolic", "diastolic", "exceeded"),
    [
        (140, 90, False),  # at the threshold is not above it
        (141, 90, True),
        (140, 91, True),
        (139, 89, False),
        (120, 95, True),
        (160, 80, True),
    ],
)
def test_default_bp_threshold_140_90(systolic: int, diastolic: int, exceeded: bool) -> None:
    """SPRAVATO label cautions above ~140/90 ([S35], V2; clinical-coding.md §5.3)."""
    assert BloodPressureThreshold().exceeded_by(systolic, diastolic) is exceeded
    flag = pre_dose_bp_flag(systolic, diastolic)
    if exceeded:
        assert flag is not None
        assert (flag.kind, flag.item) == ("contraindication", "uncontrolled_hypertension")
        assert f"{systolic}/{diastolic}" in flag.reason and "140/90" in flag.reason
    else:
        assert flag is None


@pytest.mark.parametrize(
    ("systolic", "diastolic", "exceeded"),
    [(150, 95, False), (151, 95, True), (150, 96, True), (145, 92, False)],
)
def test_configurable_bp_threshold(systolic: int, diastolic: int, exceeded: bool) -> None:
    threshold = BloodPressureThreshold(systolic=150, diastolic=95)
    flag = pre_dose_bp_flag(systolic, diastolic, threshold)
    assert (flag is not None) is exceeded
    if flag:
        assert "150/95" in flag.reason


# --------------------------------------------------------------------------- screen flags


def test_contraindication_and_caution_sets() -> None:
    """program.md step 1 and clinical-coding.md §5.3: bipolar disorder, SUD and pregnancy need
    a specialised protocol (cautions); the rest exclude."""
    assert CAUTIONS == {ScreenItem.BIPOLAR_DISORDER, ScreenItem.SUBSTANCE_USE_DISORDER, ScreenItem.PREGNANCY}
    assert CONTRAINDICATIONS.isdisjoint(CAUTIONS)
    assert CONTRAINDICATIONS | CAUTIONS == set(ScreenItem)


@pytest.mark.parametrize(
    ("item", "kind"),
    [
        ("uncontrolled_hypertension", "contraindication"),
        ("recent_myocardial_infarction", "contraindication"),
        ("unstable_angina", "contraindication"),
        ("active_psychosis", "contraindication"),
        ("aneurysmal_vascular_disease", "contraindication"),
        ("arteriovenous_malformation", "contraindication"),
        ("intracerebral_hemorrhage", "contraindication"),
        ("ketamine_hypersensitivity", "contraindication"),
        ("bipolar_disorder", "caution"),
        ("substance_use_disorder", "caution"),
        ("pregnancy", "caution"),
    ],
)
def test_screen_finding_kind(item: str, kind: str) -> None:
    s = ContraindicationScreen.model_validate(screen(findings=[{"item": item, "present": True}]))
    flags = screen_flags(s)
    assert [(f.kind, f.item) for f in flags] == [(kind, item)]


def test_absent_findings_raise_no_flags() -> None:
    findings = [{"item": i.value, "present": False} for i in ScreenItem]
    s = ContraindicationScreen.model_validate(screen(findings=findings, systolic_mmhg=140, diastolic_mmhg=90))
    assert screen_flags(s) == []


def test_screen_bp_above_threshold_flags_hypertension() -> None:
    s = ContraindicationScreen.model_validate(screen(systolic_mmhg=141, diastolic_mmhg=90))
    assert [(f.kind, f.item) for f in screen_flags(s)] == [("contraindication", "uncontrolled_hypertension")]


def test_screen_bp_flag_not_duplicated_when_finding_present() -> None:
    s = ContraindicationScreen.model_validate(
        screen(findings=[{"item": "uncontrolled_hypertension", "present": True}], systolic_mmhg=170, diastolic_mmhg=100)
    )
    flags = screen_flags(s)
    assert [f.item for f in flags] == ["uncontrolled_hypertension"]
    assert flags[0].reason == "reported present"


def test_screen_bp_uses_configured_threshold() -> None:
    s = ContraindicationScreen.model_validate(screen(systolic_mmhg=145, diastolic_mmhg=92))
    assert len(screen_flags(s)) == 1
    assert screen_flags(s, BloodPressureThreshold(150, 95)) == []


def test_screen_mixed_findings() -> None:
    findings = [
        {"item": "bipolar_disorder", "present": True},
        {"item": "active_psychosis", "present": False},
        {"item": "recent_myocardial_infarction", "present": True},
    ]
    s = ContraindicationScreen.model_validate(screen(findings=findings))
    assert {(f.kind, f.item) for f in screen_flags(s)} == {
        ("caution", "bipolar_disorder"),
        ("contraindication", "recent_myocardial_infarction"),
    }
