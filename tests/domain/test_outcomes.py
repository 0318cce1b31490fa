"""Outcome status over time: response, partial response, remission, relapse.

Sources (clinical-coding.md §1.6):
- PHQ-9 response: most recent total >= 50 % lower than the index score; remission: total < 5;
  index/eligibility: index PHQ-9 > 9 (CMS159 / NCQA DRR-E [S15]).
- MADRS response >= 50 % reduction [S16]; remission <= 10 (Hawley 2002 [S16]), many
  ketamine/esketamine trials use <= 12 — configurable, and the applied one recorded [S16].
- Partial response 25-49 % and relapse (after response, back above the index threshold and
  no longer >= 50 % reduced) are program conventions (program.md step 5; outcomes.py docstring).
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import pytest

from service.domain.outcomes import (
    DEFAULT_RULES,
    OutcomeRules,
    OutcomeStatus,
    ScorePoint,
    classify,
    current_status,
    reduction_from,
    trajectory,
)
from service.domain.scoring import Instrument

from ._builders import EST, T0

PHQ9 = Instrument.PHQ9
MADRS = Instrument.MADRS
S = OutcomeStatus


def points(*totals: int, start: dt.datetime = T0, step_days: int = 7) -> list[ScorePoint]:
    return [ScorePoint(start + dt.timedelta(days=i * step_days), total, f"qr-{i}") for i, total in enumerate(totals)]


def statuses(
    instrument: Instrument, totals: list[int] | tuple[int, ...], rules: OutcomeRules = DEFAULT_RULES
) -> list[S]:
    return [p.status for p in trajectory(instrument, points(*totals), rules)]


# --------------------------------------------------------------------------- reduction


@pytest.mark.parametrize(
    ("baseline", "total", "expected"),
    [
        (20, 10, Decimal("0.500")),
        (20, 11, Decimal("0.450")),
        (20, 15, Decimal("0.250")),
        (20, 20, Decimal("0.000")),
        (20, 25, Decimal("-0.250")),
        (27, 0, Decimal("1.000")),
        (3, 2, Decimal("0.333")),
        (0, 0, None),  # no reduction can be computed from a zero baseline
        (0, 5, None),
    ],
)
def test_reduction_from(baseline: int, total: int, expected: Decimal | None) -> None:
    assert reduction_from(baseline, total) == expected


# --------------------------------------------------------------------------- classify: PHQ-9


@pytest.mark.parametrize(
    ("baseline", "total", "status"),
    [
        # response: >= 50 % reduction (NCQA DRR-E [S15]) — exactly 50 % counts
        (20, 10, S.RESPONSE),
        (10, 5, S.RESPONSE),  # 50 % but 5 is not < 5, so response not remission
        (27, 13, S.RESPONSE),  # 51.9 %
        (27, 14, S.PARTIAL_RESPONSE),  # 48.1 %: just under response
        (20, 11, S.PARTIAL_RESPONSE),  # 45 %
        # partial response band 25-49 % (program convention)
        (20, 15, S.PARTIAL_RESPONSE),  # exactly 25 %
        (20, 16, S.NON_RESPONSE),  # 20 %
        (21, 16, S.NON_RESPONSE),  # 23.8 %
        (12, 9, S.PARTIAL_RESPONSE),  # 25 %
        (20, 20, S.NON_RESPONSE),
        (20, 24, S.NON_RESPONSE),  # worsening
        # remission: most recent total < 5 (CMS159 [S15])
        (20, 4, S.REMISSION),
        (20, 0, S.REMISSION),
        (20, 5, S.RESPONSE),  # 5 is not < 5
        (10, 4, S.REMISSION),
    ],
)
def test_classify_phq9(baseline: int, total: int, status: S) -> None:
    assert classify(PHQ9, baseline, total) is status


def test_classify_phq9_baseline_zero_is_not_evaluable() -> None:
    """A zero baseline has no defined reduction; a total of 0 is not a 'remission' from it."""
    assert classify(PHQ9, 0, 0) is S.NOT_EVALUABLE
    assert classify(PHQ9, 0, 3) is S.NOT_EVALUABLE


def test_remission_requires_an_improvement() -> None:
    """A score below 5 that is not lower than the baseline is not a remission."""
    assert classify(PHQ9, 3, 3) is S.NON_RESPONSE
    assert classify(PHQ9, 3, 4) is S.NON_RESPONSE


@pytest.mark.parametrize(
    ("baseline", "total", "status"),
    [
        (20, 11, S.RELAPSE),  # 45 % and above 9 after an earlier response
        (20, 10, S.RESPONSE),  # still >= 50 %: not a relapse
        (12, 10, S.RELAPSE),  # above 9 and only 16.7 % reduced
        (12, 9, S.PARTIAL_RESPONSE),  # 9 is not above the index threshold (> 9)
        (20, 25, S.RELAPSE),
    ],
)
def test_classify_phq9_after_response(baseline: int, total: int, status: S) -> None:
    """Relapse: after response, back above 9 (CMS159 index threshold [S15]) and no longer
    >= 50 % reduced (program rule)."""
    assert classify(PHQ9, baseline, total, responded_before=True) is status


# --------------------------------------------------------------------------- classify: MADRS


@pytest.mark.parametrize(
    ("baseline", "total", "status"),
    [
        (30, 10, S.REMISSION),  # <= 10 by default (Hawley 2002 [S16])
        (30, 11, S.RESPONSE),  # 63 % reduced, 11 > 10
        (30, 12, S.RESPONSE),
        (30, 15, S.RESPONSE),  # exactly 50 %
        (30, 16, S.PARTIAL_RESPONSE),  # 46.7 %
        (51, 26, S.PARTIAL_RESPONSE),  # 49.0 %: not response
        (51, 25, S.RESPONSE),  # 51.0 %
        (40, 30, S.PARTIAL_RESPONSE),  # exactly 25 %
        (40, 31, S.NON_RESPONSE),  # 22.5 %
        (20, 10, S.REMISSION),
    ],
)
def test_classify_madrs_default(baseline: int, total: int, status: S) -> None:
    """MADRS: response >= 50 % [S16]; remission <= 10 by default [S16]."""
    assert classify(MADRS, baseline, total) is status


@pytest.mark.parametrize(
    ("total", "status"),
    [(10, S.REMISSION), (12, S.REMISSION), (13, S.RESPONSE)],
)
def test_classify_madrs_remission_12_when_configured(total: int, status: S) -> None:
    """Many ketamine/esketamine trials use MADRS <= 12 for remission [S16]; configurable."""
    rules = OutcomeRules(madrs_remission_at_most=12)
    assert classify(MADRS, 30, total, rules=rules) is status


def test_madrs_remission_threshold_is_recorded() -> None:
    """clinical-coding.md §1.6: record which remission threshold was applied."""
    assert "<= 10" in DEFAULT_RULES.describe(MADRS)
    assert "<= 12" in OutcomeRules(madrs_remission_at_most=12).describe(MADRS)
    assert "< 5" in DEFAULT_RULES.describe(PHQ9)


@pytest.mark.parametrize(
    ("total", "status"),
    [(20, S.RELAPSE), (19, S.PARTIAL_RESPONSE), (26, S.RELAPSE), (15, S.RESPONSE)],
)
def test_classify_madrs_relapse_at_20(total: int, status: S) -> None:
    """MADRS relapse threshold: >= 20, the start of the moderate band ([S16]; program rule)."""
    assert classify(MADRS, 30, total, responded_before=True) is status


@pytest.mark.parametrize("instrument", [Instrument.GAD7, Instrument.CADSS, Instrument.CSSRS_SCREENER])
def test_no_outcome_rules_for_other_instruments(instrument: Instrument) -> None:
    with pytest.raises(ValueError):
        classify(instrument, 15, 3)


# --------------------------------------------------------------------------- trajectory


def test_trajectory_baseline_point_is_not_evaluable() -> None:
    track = trajectory(PHQ9, points(20, 10))
    assert track[0].status is S.NOT_EVALUABLE and track[0].reduction is None
    assert track[1].status is S.RESPONSE and track[1].reduction == Decimal("0.500")


@pytest.mark.parametrize(
    ("totals", "expected"),
    [
        # response, then back above 9 and < 50 % reduced -> relapse
        ((20, 10, 11), [S.RESPONSE, S.RELAPSE]),
        ((20, 10, 10), [S.RESPONSE, S.RESPONSE]),
        # remission also counts as the earlier response
        ((20, 4, 12), [S.REMISSION, S.RELAPSE]),
        ((20, 4, 9), [S.REMISSION, S.RESPONSE]),
        # partial response only: a later rise is not a relapse
        ((20, 14, 18), [S.PARTIAL_RESPONSE, S.NON_RESPONSE]),
        # no earlier response -> never relapse
        ((20, 18, 22), [S.NON_RESPONSE, S.NON_RESPONSE]),
        # relapse resets: a second relapse needs a new response first
        ((20, 8, 15, 16), [S.RESPONSE, S.RELAPSE, S.NON_RESPONSE]),
        ((20, 8, 15, 6, 12), [S.RESPONSE, S.RELAPSE, S.RESPONSE, S.RELAPSE]),
        # return above 9 but still 50 % below a high baseline is not relapse
        ((27, 4, 13), [S.REMISSION, S.RESPONSE]),
        ((27, 4, 14), [S.REMISSION, S.RELAPSE]),
    ],
)
def test_trajectory_phq9(totals: tuple[int, ...], expected: list[S]) -> None:
    assert statuses(PHQ9, totals)[1:] == expected


@pytest.mark.parametrize(
    ("baseline", "evaluable"),
    [(0, False), (5, False), (9, False), (10, True), (27, True)],
)
def test_trajectory_phq9_index_must_be_above_9(baseline: int, evaluable: bool) -> None:
    """CMS159 [S15]: response/remission are defined from an index PHQ-9 > 9."""
    track = statuses(PHQ9, (baseline, 0, 2))
    if evaluable:
        assert track[1:] == [S.REMISSION, S.REMISSION]
    else:
        assert track == [S.NOT_EVALUABLE] * 3


def test_trajectory_not_evaluable_points_still_carry_reduction() -> None:
    track = trajectory(PHQ9, points(8, 4))
    assert track[1].status is S.NOT_EVALUABLE
    assert track[1].reduction == Decimal("0.500")


def test_trajectory_baseline_zero() -> None:
    track = trajectory(PHQ9, points(0, 0, 5))
    assert [p.status for p in track] == [S.NOT_EVALUABLE] * 3
    assert [p.reduction for p in track] == [None, None, None]


@pytest.mark.parametrize(
    ("baseline", "evaluable"),
    [(19, False), (20, True)],
)
def test_trajectory_madrs_index(baseline: int, evaluable: bool) -> None:
    """MADRS index uses the relapse/moderate threshold >= 20 ([S16]; program rule)."""
    track = statuses(MADRS, (baseline, 5))
    assert (track[1] is not S.NOT_EVALUABLE) is evaluable


def test_trajectory_madrs_with_configured_remission() -> None:
    rules = OutcomeRules(madrs_remission_at_most=12)
    assert statuses(MADRS, (30, 12, 22))[1:] == [S.RESPONSE, S.RELAPSE]
    assert statuses(MADRS, (30, 12, 22), rules)[1:] == [S.REMISSION, S.RELAPSE]


def test_trajectory_orders_by_time_regardless_of_input_order() -> None:
    ordered = points(20, 8, 15, 6)
    shuffled = ordered[:]
    random.Random(7).shuffle(shuffled)
    for candidate in (shuffled, list(reversed(ordered))):
        track = trajectory(PHQ9, candidate)
        assert [p.point.record_id for p in track] == ["qr-0", "qr-1", "qr-2", "qr-3"]
        assert [p.status for p in track] == [S.NOT_EVALUABLE, S.RESPONSE, S.RELAPSE, S.RESPONSE]


def test_trajectory_baseline_is_earliest_point_not_first_given() -> None:
    early = ScorePoint(T0, 22, "qr-b")
    late = ScorePoint(T0 + dt.timedelta(days=30), 11, "qr-a")
    track = trajectory(PHQ9, [late, early])
    assert track[0].point is early
    assert track[1].status is S.RESPONSE  # 50 % of 22


def test_trajectory_compares_instants_across_offsets() -> None:
    """09:00-05:00 (14:00Z) is after 12:00+00:00 even though the wall clock reads earlier."""
    utc = dt.timezone.utc
    a = ScorePoint(dt.datetime(2026, 3, 2, 12, 0, tzinfo=utc), 20, "qr-z")
    b = ScorePoint(dt.datetime(2026, 3, 2, 9, 0, tzinfo=EST), 8, "qr-y")
    track = trajectory(PHQ9, [b, a])
    assert [p.point.record_id for p in track] == ["qr-z", "qr-y"]


def test_trajectory_ties_broken_by_record_id() -> None:
    track = trajectory(PHQ9, [ScorePoint(T0, 8, "b"), ScorePoint(T0, 20, "a")])
    assert [p.point.record_id for p in track] == ["a", "b"]


def test_trajectory_empty_and_single() -> None:
    assert trajectory(PHQ9, []) == []
    assert [p.status for p in trajectory(PHQ9, points(20))] == [S.NOT_EVALUABLE]


@pytest.mark.parametrize(
    ("totals", "status"),
    [
        ((), S.NOT_EVALUABLE),
        ((20,), S.NOT_EVALUABLE),
        ((20, 4), S.REMISSION),
        ((20, 10, 11), S.RELAPSE),
        ((9, 1), S.NOT_EVALUABLE),
        ((20, 15), S.PARTIAL_RESPONSE),
    ],
)
def test_current_status_is_latest(totals: tuple[int, ...], status: S) -> None:
    assert current_status(PHQ9, points(*totals)) is status
