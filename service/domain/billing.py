"""Billing rules for one documented session: which HCPCS drug code, how many units, which
session code for Medicare esketamine. Pure rules with their sources (clinical-coding.md §4.1):

- Esketamine (SPRAVATO) for **Medicare**: G2082 (up to 56 mg) or G2083 (more than 56 mg),
  drug included, modifier KX attests REMS enrollment, no separate J-code (CGS MAC guidance
  [S26], V). G-codes are for established patients ([S27], V2).
- Esketamine for **non-Medicare** payers: J0013 "esketamine, nasal spray, 1 mg" x mg from
  2026-01-01; S0013 (same descriptor) before that date ([S27], V2).
- Ketamine drug line: J3490 unclassified drugs with the NDC ([S30], V); one line, 1 unit
  (unclassified codes are billed as one unit with the NDC quantity stated).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from .coverage import PayerType
from .time_based_codes import NotCodable

J0013_EFFECTIVE = dt.date(2026, 1, 1)
"""S0013 -> J0013 on 2026-01-01 for non-Medicare payers (clinical-coding.md §4.1, §8 item 4)."""
MEDICARE_G2082_MAX_MG = Decimal(56)


@dataclass(frozen=True)
class DrugLine:
    code: str
    units: int
    modifiers: tuple[str, ...]
    reason: str
    ndc: str | None = None
    ndc_quantity: Decimal | None = None
    ndc_unit: str | None = None


def esketamine_drug_code(service_date: dt.date) -> str:
    """J0013 from 2026-01-01, S0013 before (non-Medicare payers)."""
    return "J0013" if service_date >= J0013_EFFECTIVE else "S0013"


def medicare_esketamine_session_code(dose_mg: Decimal) -> str:
    """G2082 for up to 56 mg, G2083 for more than 56 mg."""
    return "G2082" if dose_mg <= MEDICARE_G2082_MAX_MG else "G2083"


def esketamine_lines(
    dose_mg: Decimal | None, service_date: dt.date, payer_type: PayerType, ndc: str | None = None
) -> list[DrugLine] | NotCodable:
    """The session/drug line(s) of an esketamine session for the payer type."""
    if dose_mg is None:
        return NotCodable("esketamine dose is not documented")
    whole = Decimal(dose_mg)
    if payer_type is PayerType.MEDICARE:
        code = medicare_esketamine_session_code(whole)
        return [DrugLine(code, 1, ("KX",), f"Medicare: {whole} mg {'<=' if code == 'G2082' else '>'} 56 mg -> {code} + KX "
                         "(drug bundled, no separate J-code)")]
    code = esketamine_drug_code(service_date)
    units = int(whole)
    when = "on/after" if code == "J0013" else "before"
    return [DrugLine(code, units, (), f"{code} x {units} (1 mg units), service date {when} 2026-01-01", ndc, whole, "mg")]


def ketamine_drug_line(dose_mg: Decimal | None, ndc: str | None) -> DrugLine | NotCodable:
    """J3490 with the NDC for racemic ketamine; NotCodable without an NDC (payers reject it)."""
    if dose_mg is None:
        return NotCodable("ketamine dose is not documented")
    if not ndc:
        return NotCodable("J3490 (unclassified drug) needs the NDC of the vial used; none documented")
    return DrugLine("J3490", 1, (), f"ketamine {dose_mg} mg, unclassified drug with NDC", ndc, Decimal(dose_mg), "mg")
