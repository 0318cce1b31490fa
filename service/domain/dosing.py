"""Weight-based ketamine dosing: dose, infusion rate and pump rate.

Source: the standard IV racemic ketamine regimen for treatment-resistant depression is
0.5 mg/kg infused over 40 minutes (Fava et al., Mol Psychiatry 2020 [S34]; program.md step 3).
Rounding: dose to 0.1 mg, rate to 0.001 mg/min, pump rate to 0.1 mL/h, volume to 0.01 mL
(half-up), the precision of common infusion pumps; the unrounded values are not stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

STANDARD_MG_PER_KG = Decimal("0.5")
STANDARD_INFUSION_MINUTES = 40


@dataclass(frozen=True)
class InfusionPlan:
    weight_kg: Decimal
    mg_per_kg: Decimal
    minutes: int
    dose_mg: Decimal
    rate_mg_per_min: Decimal
    volume_ml: Decimal | None
    pump_rate_ml_per_h: Decimal | None


def _q(value: Decimal, places: str) -> Decimal:
    return value.quantize(Decimal(places), rounding=ROUND_HALF_UP)


def infusion_plan(
    weight_kg: Decimal,
    mg_per_kg: Decimal = STANDARD_MG_PER_KG,
    minutes: int = STANDARD_INFUSION_MINUTES,
    concentration_mg_per_ml: Decimal | None = None,
) -> InfusionPlan:
    """Dose in mg, rate in mg/min and, given the concentration, volume and pump rate in mL/h.

    >>> infusion_plan(Decimal(70)).dose_mg
    Decimal('35.0')
    """
    if weight_kg <= 0 or mg_per_kg <= 0 or minutes <= 0:
        raise ValueError("weight, mg/kg and minutes must be positive")
    if concentration_mg_per_ml is not None and concentration_mg_per_ml <= 0:
        raise ValueError("concentration must be positive")
    dose = weight_kg * mg_per_kg
    rate = dose / Decimal(minutes)
    volume = pump = None
    if concentration_mg_per_ml is not None:
        raw_volume = dose / concentration_mg_per_ml
        volume = _q(raw_volume, "0.01")
        pump = _q(raw_volume * Decimal(60) / Decimal(minutes), "0.1")
    return InfusionPlan(
        weight_kg=weight_kg,
        mg_per_kg=mg_per_kg,
        minutes=minutes,
        dose_mg=_q(dose, "0.1"),
        rate_mg_per_min=_q(rate, "0.001"),
        volume_ml=volume,
        pump_rate_ml_per_h=pump,
    )


def dose_deviation(dose_mg: Decimal, weight_kg: Decimal, prescribed_mg_per_kg: Decimal) -> Decimal:
    """Relative deviation of the administered dose from the prescribed weight-based dose
    (0.10 = 10 % more than prescribed)."""
    if weight_kg <= 0 or prescribed_mg_per_kg <= 0:
        raise ValueError("weight and prescribed mg/kg must be positive")
    expected = weight_kg * prescribed_mg_per_kg
    return _q((dose_mg - expected) / expected, "0.001")
