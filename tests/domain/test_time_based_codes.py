"""Documented minutes -> CPT codes.

Sources (clinical-coding.md §4.1):
- IV: <= 15 min is a push (96374), > 15 min an infusion (Medicare, CMS IOM 100-04 ch. 12 §30.5
  via Noridian [S47]); 96365 = initial hour; 96366 per additional hour only when > 30 min
  beyond the previous hour: first unit at >= 91 min total, a final part-hour counts only if
  > 30 min ([S29][S46], V2); a 40-min ketamine infusion is 96365 alone.
- Psychotherapy: 16-37 -> 90832, 38-52 -> 90834, >= 53 -> 90837; with E/M the add-ons
  90833 / 90836 / 90838; < 16 min not reportable (APA Services [S29]).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from service.domain.administration import AdministrationSession
from service.domain.time_based_codes import CodedLine, NotCodable, iv_administration_lines, psychotherapy_code

from ._builders import T0, iv_session, minutes


def codes(result: list[CodedLine] | NotCodable) -> list[tuple[str, int]]:
    assert isinstance(result, list), result
    return [(line.code, line.units) for line in result]


@pytest.mark.parametrize(
    ("mins", "expected"),
    [
        (1, [("96374", 1)]),
        (15, [("96374", 1)]),  # <= 15 min is a push (Noridian [S47])
        (16, [("96365", 1)]),  # > 15 min is an infusion
        (40, [("96365", 1)]),  # the standard ketamine infusion: 96365 alone
        (60, [("96365", 1)]),
        (61, [("96365", 1)]),
        (90, [("96365", 1)]),  # 30 min beyond the hour: not > 30
        (91, [("96365", 1), ("96366", 1)]),  # first 96366 unit at >= 91 min
        (120, [("96365", 1), ("96366", 1)]),
        (150, [("96365", 1), ("96366", 1)]),  # final part-hour of 30 min does not count
        (151, [("96365", 1), ("96366", 2)]),  # final part-hour of 31 min counts
        (180, [("96365", 1), ("96366", 2)]),
        (210, [("96365", 1), ("96366", 2)]),
        (211, [("96365", 1), ("96366", 3)]),
    ],
)
def test_iv_administration_lines(mins: int, expected: list[tuple[str, int]]) -> None:
    assert codes(iv_administration_lines(mins)) == expected


@pytest.mark.parametrize(
    ("mins", "expected"),
    [
        (Decimal("40"), [("96365", 1)]),
        (Decimal("15.9"), [("96374", 1)]),  # partial minutes do not reach a threshold (module rule)
        (Decimal("16.0"), [("96365", 1)]),
        (Decimal("90.99"), [("96365", 1)]),
        (Decimal("91"), [("96365", 1), ("96366", 1)]),
    ],
)
def test_iv_administration_lines_decimal_minutes(mins: Decimal, expected: list[tuple[str, int]]) -> None:
    assert codes(iv_administration_lines(mins)) == expected


def test_iv_missing_minutes_not_codable() -> None:
    result = iv_administration_lines(None)
    assert isinstance(result, NotCodable)
    assert "not documented" in result.reason


@pytest.mark.parametrize("mins", [0, -5, Decimal("0.5")])
def test_iv_non_positive_minutes_not_codable(mins: int | Decimal) -> None:
    result = iv_administration_lines(mins)
    assert isinstance(result, NotCodable)
    assert result.reason


def test_iv_lines_carry_reasons() -> None:
    lines = iv_administration_lines(151)
    assert isinstance(lines, list)
    assert all(line.reason for line in lines)
    assert "91 min beyond" in lines[1].reason


@pytest.mark.parametrize(
    ("duration", "expected"),
    [
        (minutes(40), [("96365", 1)]),
        (minutes(15), [("96374", 1)]),
        (minutes(15) + dt.timedelta(seconds=59), [("96374", 1)]),
        (minutes(91), [("96365", 1), ("96366", 1)]),
    ],
)
def test_iv_lines_from_documented_session(duration: dt.timedelta, expected: list[tuple[str, int]]) -> None:
    """The session's documented start/stop times drive the code (clinical-coding.md §4.1:
    'document start/stop times')."""
    session = AdministrationSession.model_validate(iv_session(ended_at=T0 + duration))
    assert codes(iv_administration_lines(session.infusion_minutes)) == expected


def test_iv_lines_for_session_without_stop_time() -> None:
    session = AdministrationSession.model_validate(iv_session(status="stopped", ended_at=None))
    assert session.infusion_minutes is None
    assert isinstance(iv_administration_lines(session.infusion_minutes), NotCodable)


# --------------------------------------------------------------------------- psychotherapy


@pytest.mark.parametrize(
    ("mins", "code", "addon"),
    [
        (16, "90832", "90833"),
        (30, "90832", "90833"),
        (37, "90832", "90833"),
        (38, "90834", "90836"),
        (45, "90834", "90836"),
        (52, "90834", "90836"),
        (53, "90837", "90838"),
        (60, "90837", "90838"),
        (90, "90837", "90838"),  # program integration sessions run 60-90 min (program.md step 4)
        (240, "90837", "90838"),
    ],
)
def test_psychotherapy_codes(mins: int, code: str, addon: str) -> None:
    """APA [S29]: 16-37 -> 90832, 38-52 -> 90834, >= 53 -> 90837; with E/M -> 90833/90836/90838."""
    alone = psychotherapy_code(mins)
    with_em = psychotherapy_code(mins, with_em_visit=True)
    assert isinstance(alone, CodedLine) and isinstance(with_em, CodedLine)
    assert (alone.code, alone.units) == (code, 1)
    assert (with_em.code, with_em.units) == (addon, 1)
    assert "E/M" in with_em.reason and "E/M" not in alone.reason


@pytest.mark.parametrize("mins", [15, 1, 0, -1])
@pytest.mark.parametrize("with_em", [False, True])
def test_psychotherapy_under_16_minutes_not_codable(mins: int, with_em: bool) -> None:
    result = psychotherapy_code(mins, with_em_visit=with_em)
    assert isinstance(result, NotCodable)
    assert "16" in result.reason


@pytest.mark.parametrize("with_em", [False, True])
def test_psychotherapy_missing_minutes_not_codable(with_em: bool) -> None:
    result = psychotherapy_code(None, with_em_visit=with_em)
    assert isinstance(result, NotCodable)
    assert "not documented" in result.reason
