"""Claim-line derivation at the boundaries, with the rule each boundary comes from."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from service.domain.billing import esketamine_drug_code, esketamine_lines, ketamine_drug_line
from service.domain.coverage import PayerType
from service.domain.time_based_codes import NotCodable, iv_administration_lines, psychotherapy_code


@pytest.mark.parametrize(
    ("minutes", "expected"),
    [
        # clinical-coding.md §4.1 [S29][S46]: > 15 min is an infusion; 96365 covers the first hour
        (40, [("96365", 1)]),
        # 61 min: 1 min beyond the first hour is not > 30 min, so no 96366
        (61, [("96365", 1)]),
        # 90 min: 30 min beyond the hour is still not > 30 min
        (90, [("96365", 1)]),
        # 91 min: 31 min beyond the first hour -> first 96366 unit ([S46] "first unit at >= 91 min")
        (91, [("96365", 1), ("96366", 1)]),
        # <= 15 min is an IV push (Medicare push definition, CMS IOM 100-04 ch.12 §30.5 via Noridian [S47])
        (15, [("96374", 1)]),
    ],
)
def test_iv_infusion_codes_by_documented_minutes(minutes: int, expected: list[tuple[str, int]]) -> None:
    lines = iv_administration_lines(minutes)
    assert not isinstance(lines, NotCodable)
    assert [(line.code, line.units) for line in lines] == expected


def test_missing_stop_time_is_not_codable_with_a_reason() -> None:
    result = iv_administration_lines(None)
    assert isinstance(result, NotCodable) and "stop" in result.reason


@pytest.mark.parametrize(
    ("minutes", "plain", "with_em"),
    [
        # APA Services psychotherapy codes [S29]: 16-37 -> 90832, 38-52 -> 90834, >= 53 -> 90837;
        # add-on codes with an E/M visit: 90833 / 90836 / 90838 (clinical-coding.md §4.1)
        (37, "90832", "90833"),
        (38, "90834", "90836"),
        (52, "90834", "90836"),
        (53, "90837", "90838"),
    ],
)
def test_psychotherapy_codes_by_minutes(minutes: int, plain: str, with_em: str) -> None:
    assert psychotherapy_code(minutes).code == plain  # type: ignore[union-attr]
    assert psychotherapy_code(minutes, with_em_visit=True).code == with_em  # type: ignore[union-attr]


def test_psychotherapy_without_minutes_or_under_16_is_not_codable() -> None:
    assert isinstance(psychotherapy_code(None), NotCodable)
    assert isinstance(psychotherapy_code(15), NotCodable)


AFTER = dt.date(2026, 3, 2)
BEFORE = dt.date(2025, 12, 31)


@pytest.mark.parametrize(
    ("dose", "code"),
    [
        # CGS Medicare SPRAVATO billing [S26]: G2082 up to 56 mg, G2083 more than 56 mg, with KX
        (Decimal(56), "G2082"),
        (Decimal(84), "G2083"),
    ],
)
def test_medicare_esketamine_is_a_g_code_with_kx_and_no_drug_line(dose: Decimal, code: str) -> None:
    lines = esketamine_lines(dose, AFTER, PayerType.MEDICARE)
    assert not isinstance(lines, NotCodable)
    assert [(line.code, line.units, line.modifiers) for line in lines] == [(code, 1, ("KX",))]
    assert not any(line.code in ("J0013", "S0013", "J3490") for line in lines)  # drug bundled [S26]


@pytest.mark.parametrize("dose", [Decimal(56), Decimal(84)])
def test_commercial_esketamine_is_j0013_per_mg_from_2026(dose: Decimal) -> None:
    # J0013 "esketamine, nasal spray, 1 mg" replaced S0013 on 2026-01-01 for non-Medicare payers [S27]
    lines = esketamine_lines(dose, AFTER, PayerType.COMMERCIAL, "50458-028-02")
    assert not isinstance(lines, NotCodable)
    assert [(line.code, line.units, line.modifiers) for line in lines] == [("J0013", int(dose), ())]


@pytest.mark.parametrize(("day", "code"), [(BEFORE, "S0013"), (dt.date(2026, 1, 1), "J0013"), (AFTER, "J0013")])
def test_s0013_before_and_j0013_from_2026_01_01(day: dt.date, code: str) -> None:
    assert esketamine_drug_code(day) == code
    lines = esketamine_lines(Decimal(84), day, PayerType.COMMERCIAL)
    assert not isinstance(lines, NotCodable) and lines[0].code == code and lines[0].units == 84


def test_ketamine_drug_line_needs_the_ndc() -> None:
    # J3490 unclassified drug is billed with the NDC ([S30]); without it the line is not supported
    assert isinstance(ketamine_drug_line(Decimal(36), None), NotCodable)
    line = ketamine_drug_line(Decimal(36), "67457-108-10")
    assert not isinstance(line, NotCodable) and (line.code, line.units, line.ndc) == ("J3490", 1, "67457-108-10")
