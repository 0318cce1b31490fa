"""Questionnaire scoring: totals, severity bands, safety flags and answer validation.

Sources (clinical-coding.md §1):
- PHQ-9: sum of items 1-9, 0-27; bands 0-4/5-9/10-14/15-19/20-27 (Kroenke 2001 [S13]);
  item 10 (69722-7, difficulty) is not added (§1.1, §8 pitfall 1); any non-zero item 9 raises
  a safety flag (program rule, §1.1).
- GAD-7: 0-21; bands 0-4/5-9/10-14/15-21 (Spitzer 2006 [S14]).
- C-SSRS screener triage logic [S19] (V2), skip logic of Q3-Q5 and Q6b [S10].
- MADRS: items 0-6, total 0-60; bands 0-6/7-19/20-34/35-60 ([S16], V2).
- CADSS: 23 items; CADSS-6 = items 1, 2, 6, 7, 15, 22 (Rodrigues 2021 [S18]); 0-4 rating (U).
"""

from __future__ import annotations

import pytest

from service.domain.questionnaires import QuestionnaireAnswers
from service.domain.scoring import (
    CADSS6_ITEMS,
    AnswerError,
    Instrument,
    SuicideRisk,
    check_answers,
    score,
)

from ._builders import T0, assert_rejected, spread

PHQ9_ITEMS = tuple(str(i) for i in range(1, 10))
GAD7_ITEMS = tuple(str(i) for i in range(1, 8))
MADRS_ITEMS = tuple(str(i) for i in range(1, 11))
CADSS_ITEMS = tuple(str(i) for i in range(1, 24))


def phq9(total: int = 0, **items: int) -> dict[str, int]:
    """PHQ-9 answers summing to `total` over items 1-9 (item 9 used last); item overrides via
    keyword `i<n>=points`."""
    answers = spread(total, PHQ9_ITEMS, 3)
    for key, value in items.items():
        answers[key.removeprefix("i")] = value
    return answers


# --------------------------------------------------------------------------- PHQ-9


@pytest.mark.parametrize(
    ("total", "band"),
    [
        (0, "minimal"),
        (4, "minimal"),
        (5, "mild"),
        (9, "mild"),
        (10, "moderate"),
        (14, "moderate"),
        (15, "moderately severe"),
        (19, "moderately severe"),
        (20, "severe"),
        (27, "severe"),
    ],
)
def test_phq9_band_boundaries(total: int, band: str) -> None:
    """Kroenke 2001 [S13]: 0-4 minimal, 5-9 mild, 10-14 moderate, 15-19 moderately severe,
    20-27 severe; every band edge is tested on both sides."""
    result = score(Instrument.PHQ9, phq9(total))
    assert result.instrument is Instrument.PHQ9
    assert result.total == total
    assert result.band == band


@pytest.mark.parametrize("difficulty", [0, 1, 2, 3])
def test_phq9_item10_difficulty_is_not_added(difficulty: int) -> None:
    """Item 10 (LOINC 69722-7) is not part of the total (clinical-coding.md §1.1, §8.1 [S1])."""
    answers = phq9(9) | {"10": difficulty}
    result = score(Instrument.PHQ9, answers)
    assert result.total == 9
    assert result.band == "mild"  # 9 + 3 would wrongly be "moderate"


def test_phq9_item10_is_optional() -> None:
    assert score(Instrument.PHQ9, phq9(12)).total == 12


@pytest.mark.parametrize(("item9", "flagged"), [(0, False), (1, True), (2, True), (3, True)])
def test_phq9_item9_safety_flag(item9: int, flagged: bool) -> None:
    """Any non-zero item 9 (44260-8) raises a safety flag (program rule, §1.1); zero does not,
    even with a severe total."""
    answers = {i: 3 for i in PHQ9_ITEMS[:8]} | {"9": item9}
    result = score(Instrument.PHQ9, answers)
    assert result.total == 24 + item9
    assert ("phq9-item9-positive" in result.flags) is flagged
    if not flagged:
        assert result.flags == ()


def test_phq9_item9_flag_independent_of_total() -> None:
    """Item 9 = 1 with every other item 0: total 1 (minimal) but still flagged."""
    result = score(Instrument.PHQ9, phq9(0, i9=1))
    assert (result.total, result.band) == (1, "minimal")
    assert result.flags == ("phq9-item9-positive",)


@pytest.mark.parametrize("missing", PHQ9_ITEMS)
def test_phq9_missing_item_names_the_item(missing: str) -> None:
    answers = phq9(0)
    del answers[missing]
    with pytest.raises(AnswerError) as info:
        score(Instrument.PHQ9, answers)
    assert info.value.item == missing
    assert missing in str(info.value)


def test_phq9_missing_items_reports_first_missing() -> None:
    answers = {i: 0 for i in ("1", "2", "3", "5", "6", "7", "8")}
    with pytest.raises(AnswerError) as info:
        check_answers(Instrument.PHQ9, answers)
    assert info.value.item == "4"


@pytest.mark.parametrize(
    ("item", "value"),
    [
        ("1", 4),  # above the 0-3 range of LL358-3 [S9]
        ("5", -1),
        ("9", 4),
        ("10", 4),  # the optional item is range-checked too
        ("10", -1),
        ("3", True),  # bool is not whole points even though bool subclasses int
        ("3", False),
        ("2", 1.0),
        ("2", "1"),
        ("2", None),
    ],
)
def test_phq9_invalid_answer_value(item: str, value: object) -> None:
    answers = phq9(0) | {item: value}
    with pytest.raises(AnswerError) as info:
        score(Instrument.PHQ9, answers)  # type: ignore[arg-type]
    assert info.value.item == item


@pytest.mark.parametrize("item", ["11", "0", "6b", "q1", ""])
def test_phq9_unknown_item(item: str) -> None:
    with pytest.raises(AnswerError) as info:
        score(Instrument.PHQ9, phq9(0) | {item: 0})
    assert info.value.item == item


def test_answer_error_is_a_value_error() -> None:
    assert issubclass(AnswerError, ValueError)


# --------------------------------------------------------------------------- GAD-7


@pytest.mark.parametrize(
    ("total", "band"),
    [
        (0, "minimal"),
        (4, "minimal"),
        (5, "mild"),
        (9, "mild"),
        (10, "moderate"),
        (14, "moderate"),
        (15, "severe"),
        (21, "severe"),
    ],
)
def test_gad7_band_boundaries(total: int, band: str) -> None:
    """Spitzer 2006 [S14]: 0-4 minimal, 5-9 mild, 10-14 moderate, 15-21 severe."""
    result = score(Instrument.GAD7, spread(total, GAD7_ITEMS, 3))
    assert (result.total, result.band, result.flags) == (total, band, ())


@pytest.mark.parametrize(("item", "value"), [("1", 4), ("7", -1), ("4", True)])
def test_gad7_out_of_range(item: str, value: object) -> None:
    with pytest.raises(AnswerError) as info:
        score(Instrument.GAD7, spread(0, GAD7_ITEMS, 3) | {item: value})  # type: ignore[arg-type]
    assert info.value.item == item


@pytest.mark.parametrize("item", ["8", "9", "10"])
def test_gad7_has_no_items_beyond_7(item: str) -> None:
    """GAD-7 has 7 items; no difficulty item is defined here (LOINC not verified, §1.3)."""
    with pytest.raises(AnswerError) as info:
        score(Instrument.GAD7, spread(0, GAD7_ITEMS, 3) | {item: 0})
    assert info.value.item == item


def test_gad7_missing_item() -> None:
    answers = spread(0, GAD7_ITEMS, 3)
    del answers["7"]
    with pytest.raises(AnswerError) as info:
        score(Instrument.GAD7, answers)
    assert info.value.item == "7"


# --------------------------------------------------------------------------- MADRS


@pytest.mark.parametrize(
    ("total", "band"),
    [
        (0, "normal"),
        (6, "normal"),
        (7, "mild"),
        (19, "mild"),
        (20, "moderate"),
        (34, "moderate"),
        (35, "severe"),
        (60, "severe"),
    ],
)
def test_madrs_band_boundaries(total: int, band: str) -> None:
    """MADRS bands 0-6 normal, 7-19 mild, 20-34 moderate, 35-60 severe ([S16], V2)."""
    result = score(Instrument.MADRS, spread(total, MADRS_ITEMS, 6))
    assert (result.total, result.band) == (total, band)


@pytest.mark.parametrize(("item", "value"), [("1", 7), ("10", -1), ("5", True)])
def test_madrs_item_range_0_to_6(item: str, value: object) -> None:
    with pytest.raises(AnswerError) as info:
        score(Instrument.MADRS, spread(0, MADRS_ITEMS, 6) | {item: value})  # type: ignore[arg-type]
    assert info.value.item == item


def test_madrs_item_6_points_accepted() -> None:
    assert score(Instrument.MADRS, spread(0, MADRS_ITEMS, 6) | {"3": 6}).total == 6


def test_madrs_has_ten_items() -> None:
    with pytest.raises(AnswerError) as info:
        score(Instrument.MADRS, spread(0, MADRS_ITEMS, 6) | {"11": 0})
    assert info.value.item == "11"


# --------------------------------------------------------------------------- CADSS


def test_cadss6_items_are_rodrigues_2021() -> None:
    """CADSS-6 = items 1, 2, 6, 7, 15, 22 (Rodrigues 2021 [S18])."""
    assert CADSS6_ITEMS == ("1", "2", "6", "7", "15", "22")


@pytest.mark.parametrize(
    ("answers_on", "total", "cadss6"),
    [
        ({}, 0, 0),
        ({i: 4 for i in CADSS_ITEMS}, 92, 24),  # 23 x 4 = 92 (rating 0-4 is U in §1.5)
        ({i: 4 for i in ("1", "2", "6", "7", "15", "22")}, 24, 24),
        ({i: 4 for i in ("3", "4", "5", "8", "23")}, 20, 0),  # non-CADSS-6 items only
        ({"1": 1, "2": 2, "6": 3, "7": 4, "15": 1, "22": 2, "23": 3, "3": 1}, 17, 13),
    ],
)
def test_cadss_total_and_cadss6_subscore(answers_on: dict[str, int], total: int, cadss6: int) -> None:
    answers = {i: 0 for i in CADSS_ITEMS} | answers_on
    result = score(Instrument.CADSS, answers)
    assert result.total == total
    assert result.subscores == {"cadss6": cadss6}
    assert result.band is None  # no validated CADSS bands are cited


@pytest.mark.parametrize(("item", "value"), [("1", 5), ("23", -1), ("24", 0)])
def test_cadss_invalid(item: str, value: int) -> None:
    with pytest.raises(AnswerError) as info:
        score(Instrument.CADSS, {i: 0 for i in CADSS_ITEMS} | {item: value})
    assert info.value.item == item


def test_cadss_missing_item() -> None:
    answers = {i: 0 for i in CADSS_ITEMS}
    del answers["22"]
    with pytest.raises(AnswerError) as info:
        score(Instrument.CADSS, answers)
    assert info.value.item == "22"


def test_subscores_only_for_cadss() -> None:
    assert score(Instrument.PHQ9, phq9(10)).subscores == {}


# --------------------------------------------------------------------------- C-SSRS screener

NO = False
YES = True


@pytest.mark.parametrize(
    ("answers", "risk"),
    [
        pytest.param({"1": NO, "2": NO, "6": NO}, SuicideRisk.NONE, id="none"),
        pytest.param({"1": YES, "2": NO, "6": NO}, SuicideRisk.LOW, id="low-Q1"),
        pytest.param({"1": NO, "2": YES, "3": NO, "4": NO, "5": NO, "6": NO}, SuicideRisk.LOW, id="low-Q2"),
        pytest.param({"1": YES, "2": YES, "3": NO, "4": NO, "5": NO, "6": NO}, SuicideRisk.LOW, id="low-Q1Q2"),
        pytest.param({"1": YES, "2": YES, "3": YES, "4": NO, "5": NO, "6": NO}, SuicideRisk.MODERATE, id="moderate-Q3"),
        pytest.param({"1": NO, "2": NO, "6": YES, "6b": NO}, SuicideRisk.MODERATE, id="moderate-Q6-lifetime"),
        pytest.param({"1": YES, "2": YES, "3": NO, "4": YES, "5": NO, "6": NO}, SuicideRisk.HIGH, id="high-Q4"),
        pytest.param({"1": YES, "2": YES, "3": NO, "4": NO, "5": YES, "6": NO}, SuicideRisk.HIGH, id="high-Q5"),
        pytest.param({"1": NO, "2": NO, "6": YES, "6b": YES}, SuicideRisk.HIGH, id="high-Q6b"),
        pytest.param(
            {"1": YES, "2": YES, "3": YES, "4": YES, "5": YES, "6": YES, "6b": YES}, SuicideRisk.HIGH, id="high-all"
        ),
        pytest.param(
            {"1": YES, "2": YES, "3": YES, "4": NO, "5": NO, "6": YES, "6b": YES},
            SuicideRisk.HIGH,
            id="high-beats-moderate",
        ),
    ],
)
def test_cssrs_triage(answers: dict[str, bool], risk: SuicideRisk) -> None:
    """C-SSRS screener triage [S19] (V2): Q1 or Q2 yes -> low; Q3 yes or lifetime behaviour
    (Q6 yes, not within 3 months) -> moderate; Q4, Q5 or Q6b yes -> high. Highest level wins."""
    result = score(Instrument.CSSRS_SCREENER, answers)
    assert result.risk_level is risk
    assert result.total is None and result.band is None  # the screener has no total (§1.4)
    expected_flags = () if risk is SuicideRisk.NONE else (f"suicide-risk-{risk.value}",)
    assert result.flags == expected_flags


@pytest.mark.parametrize(
    ("answers", "item"),
    [
        pytest.param({"1": NO, "2": NO, "3": NO, "6": NO}, "3", id="Q3-when-Q2-no"),
        pytest.param({"1": YES, "2": NO, "3": YES, "6": NO}, "3", id="Q3-yes-when-Q2-no"),
        pytest.param({"1": NO, "2": NO, "4": NO, "6": NO}, "4", id="Q4-when-Q2-no"),
        pytest.param({"1": NO, "2": NO, "5": YES, "6": NO}, "5", id="Q5-when-Q2-no"),
        pytest.param({"1": NO, "2": YES, "6": NO}, "3", id="Q3-5-missing-when-Q2-yes"),
        pytest.param({"1": NO, "2": NO, "6": YES}, "6b", id="6b-missing-when-6-yes"),
        pytest.param({"1": NO, "2": NO, "6": NO, "6b": NO}, "6b", id="6b-given-when-6-no"),
        pytest.param({"1": NO, "2": NO, "6": NO, "6b": YES}, "6b", id="6b-yes-when-6-no"),
    ],
)
def test_cssrs_skip_logic_violations(answers: dict[str, bool], item: str) -> None:
    """Q3-Q5 are asked only if Q2 = yes; Q6b only if Q6 = yes ([S10], clinical-coding.md §1.4)."""
    with pytest.raises(AnswerError) as info:
        score(Instrument.CSSRS_SCREENER, answers)
    assert info.value.item == item


@pytest.mark.parametrize("missing", ["1", "2", "6"])
def test_cssrs_always_asked_items_required(missing: str) -> None:
    answers = {"1": NO, "2": NO, "6": NO}
    del answers[missing]
    with pytest.raises(AnswerError) as info:
        score(Instrument.CSSRS_SCREENER, answers)
    assert info.value.item == missing


@pytest.mark.parametrize("value", [1, 0, "yes", None])
def test_cssrs_answers_must_be_booleans(value: object) -> None:
    """Yes/no items (LA33-6 / LA32-8 [S10]) take true/false, not points."""
    with pytest.raises(AnswerError) as info:
        score(Instrument.CSSRS_SCREENER, {"1": value, "2": NO, "6": NO})  # type: ignore[dict-item]
    assert info.value.item == "1"


def test_cssrs_unknown_item() -> None:
    with pytest.raises(AnswerError) as info:
        score(Instrument.CSSRS_SCREENER, {"1": NO, "2": NO, "6": NO, "7": NO})
    assert info.value.item == "7"


# --------------------------------------------------------------------------- QuestionnaireAnswers record


def qa(**overrides: object) -> dict[str, object]:
    base: dict[str, object] = dict(
        id="qr-1",
        clinic_id="clinic-1",
        patient_id="pat-1",
        instrument="phq9",
        authored_at=T0,
        timepoint="baseline",
        answers=phq9(14, i9=0),
    )
    base.update(overrides)
    return base


def test_questionnaire_record_scores() -> None:
    record = QuestionnaireAnswers.model_validate(qa(answers=phq9(15) | {"10": 2}))
    result = record.result()
    assert (result.total, result.band) == (15, "moderately severe")


def test_questionnaire_record_rejects_missing_item_with_item_name() -> None:
    answers = phq9(0)
    del answers["9"]
    assert_rejected(QuestionnaireAnswers, qa(answers=answers), loc=(), match="answers.9")


def test_questionnaire_record_rejects_out_of_range_item() -> None:
    assert_rejected(QuestionnaireAnswers, qa(answers=phq9(0) | {"4": 4}), loc=(), match="answers.4")


def test_questionnaire_record_rejects_cssrs_skip_violation() -> None:
    answers = {"1": False, "2": False, "6": False, "6b": False}
    assert_rejected(QuestionnaireAnswers, qa(instrument="cssrs_screener", answers=answers), loc=(), match="answers.6b")


def test_questionnaire_record_accepts_cssrs_booleans() -> None:
    answers = {"1": True, "2": True, "3": False, "4": True, "5": False, "6": False}
    record = QuestionnaireAnswers.model_validate(qa(instrument="cssrs_screener", answers=answers))
    assert record.result().risk_level is SuicideRisk.HIGH


def test_questionnaire_record_requires_offset() -> None:
    assert_rejected(QuestionnaireAnswers, qa(authored_at=T0.replace(tzinfo=None)), loc=("authored_at",))


def test_questionnaire_record_rejects_empty_answers() -> None:
    assert_rejected(QuestionnaireAnswers, qa(answers={}), loc=("answers",))
