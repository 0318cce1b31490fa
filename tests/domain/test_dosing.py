"""Weight-based IV ketamine dosing.

Source: 0.5 mg/kg over 40 minutes (Fava et al., Mol Psychiatry 2020 [S34]; program.md step 3);
worked example 70 kg -> 35 mg, 0.875 mg/min (clinical-coding.md §3.3). Rounding per
dosing.py: dose 0.1 mg, rate 0.001 mg/min, volume 0.01 mL, pump 0.1 mL/h, all ROUND_HALF_UP.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from service.domain.dosing import (
    STANDARD_INFUSION_MINUTES,
    STANDARD_MG_PER_KG,
    dose_deviation,
    infusion_plan,
)

D = Decimal


def test_standard_regimen_constants() -> None:
    """Fava 2020 [S34]: 0.5 mg/kg over 40 minutes."""
    assert STANDARD_MG_PER_KG == D("0.5")
    assert STANDARD_INFUSION_MINUTES == 40


def test_70kg_standard_plan() -> None:
    """clinical-coding.md §3.3: 70 kg -> 35 mg over 40 min, rateRatio 0.875 mg/min."""
    plan = infusion_plan(D(70))
    assert plan.dose_mg == D("35.0")
    assert str(plan.dose_mg) == "35.0"
    assert plan.rate_mg_per_min == D("0.875")
    assert plan.minutes == 40 and plan.mg_per_kg == D("0.5") and plan.weight_kg == D(70)
    assert plan.volume_ml is None and plan.pump_rate_ml_per_h is None


def test_70kg_pump_rate_at_10_mg_per_ml() -> None:
    """35 mg / 10 mg/mL = 3.5 mL over 40 min = 3.5 * 60 / 40 = 5.25 mL/h -> 5.3 (half-up;
    half-even would give 5.2)."""
    plan = infusion_plan(D(70), concentration_mg_per_ml=D(10))
    assert plan.volume_ml == D("3.50")
    assert plan.pump_rate_ml_per_h == D("5.3")


@pytest.mark.parametrize(
    ("weight", "dose", "rate"),
    [
        (D("70.5"), D("35.3"), D("0.881")),  # 35.25 -> 35.3 half-up (half-even: 35.2); 0.88125
        (D("70.1"), D("35.1"), D("0.876")),  # 35.05 -> 35.1 half-up (half-even: 35.0); 0.87625
        (D("70.6"), D("35.3"), D("0.883")),  # rate 0.8825 -> 0.883 half-up (half-even: 0.882)
        (D("70.2"), D("35.1"), D("0.878")),  # rate 0.8775 -> 0.878
        (D("80"), D("40.0"), D("1.000")),
        (D("45.3"), D("22.7"), D("0.566")),  # 22.65 -> 22.7; 0.56625 -> 0.566
    ],
)
def test_half_up_rounding_of_dose_and_rate(weight: Decimal, dose: Decimal, rate: Decimal) -> None:
    plan = infusion_plan(weight)
    assert plan.dose_mg == dose
    assert plan.rate_mg_per_min == rate


def test_rate_is_computed_from_unrounded_dose() -> None:
    """70.1 kg: unrounded 35.05 mg / 40 = 0.87625 -> 0.876; from the rounded 35.1 it would be 0.878."""
    assert infusion_plan(D("70.1")).rate_mg_per_min == D("0.876")


@pytest.mark.parametrize(
    ("weight", "conc", "volume", "pump"),
    [
        (D("70.1"), D(10), D("3.51"), D("5.3")),  # 3.505 mL -> 3.51 half-up; 5.2575 -> 5.3
        (D(70), D(100), D("0.35"), D("0.5")),  # 0.35 mL * 1.5 = 0.525 -> 0.5
        (D(90), D(10), D("4.50"), D("6.8")),  # 6.75 -> 6.8 half-up
        (D(60), D(1), D("30.00"), D("45.0")),
    ],
)
def test_volume_and_pump_rate_rounding(weight: Decimal, conc: Decimal, volume: Decimal, pump: Decimal) -> None:
    plan = infusion_plan(weight, concentration_mg_per_ml=conc)
    assert plan.volume_ml == volume
    assert plan.pump_rate_ml_per_h == pump


def test_pump_rate_uses_unrounded_volume() -> None:
    """69.94 kg -> 34.97 mg -> 3.497 mL (shown 3.50); pump from the raw volume is
    3.497 * 60 / 40 = 5.2455 -> 5.2, whereas the rounded 3.50 mL would give 5.25 -> 5.3."""
    plan = infusion_plan(D("69.94"), concentration_mg_per_ml=D(10))
    assert plan.volume_ml == D("3.50")
    assert plan.pump_rate_ml_per_h == D("5.2")


@pytest.mark.parametrize(
    ("mg_per_kg", "minutes", "dose", "rate", "pump"),
    [
        (D("0.75"), 40, D("52.5"), D("1.313"), D("7.9")),  # 1.3125 -> 1.313; 7.875 -> 7.9
        (D("1.0"), 40, D("70.0"), D("1.750"), D("10.5")),
        (D("0.5"), 60, D("35.0"), D("0.583"), D("3.5")),
        (D("0.5"), 100, D("35.0"), D("0.350"), D("2.1")),
    ],
)
def test_non_standard_regimens(mg_per_kg: Decimal, minutes: int, dose: Decimal, rate: Decimal, pump: Decimal) -> None:
    plan = infusion_plan(D(70), mg_per_kg, minutes, concentration_mg_per_ml=D(10))
    assert (plan.dose_mg, plan.rate_mg_per_min, plan.pump_rate_ml_per_h) == (dose, rate, pump)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(weight_kg=D(0)),
        dict(weight_kg=D(-70)),
        dict(weight_kg=D(70), mg_per_kg=D(0)),
        dict(weight_kg=D(70), mg_per_kg=D("-0.5")),
        dict(weight_kg=D(70), minutes=0),
        dict(weight_kg=D(70), minutes=-40),
        dict(weight_kg=D(70), concentration_mg_per_ml=D(0)),
        dict(weight_kg=D(70), concentration_mg_per_ml=D(-10)),
    ],
)
def test_invalid_inputs_raise(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        infusion_plan(**kwargs)


@pytest.mark.parametrize(
    ("dose", "weight", "mg_per_kg", "deviation"),
    [
        (D(35), D(70), D("0.5"), D("0.000")),
        (D("38.5"), D(70), D("0.5"), D("0.100")),  # 10 % over
        (D("31.5"), D(70), D("0.5"), D("-0.100")),  # 10 % under
        (D("35.0175"), D(70), D("0.5"), D("0.001")),  # 0.0005 -> 0.001 half-up
        (D("70"), D(70), D("0.5"), D("1.000")),
        (D("35.1"), D(70), D("0.5"), D("0.003")),  # 0.002857 -> 0.003
    ],
)
def test_dose_deviation(dose: Decimal, weight: Decimal, mg_per_kg: Decimal, deviation: Decimal) -> None:
    """Relative deviation of the given dose from the weight-based prescription."""
    assert dose_deviation(dose, weight, mg_per_kg) == deviation
