"""Time rules that turn documented minutes into procedure codes.

Pure rules, used both for the Procedure codings and for claim documentation. Sources
(clinical-coding.md §4.1):
- IV infusion: more than 15 minutes is an infusion, 15 minutes or less is a push (Medicare,
  CMS IOM 100-04 ch. 12 §30.5 via Noridian [S47]); 96365 covers the first hour; 96366 is
  added per additional hour only when the infusion runs more than 30 minutes beyond the
  previous hour (first unit at >= 91 minutes total; a final part-hour counts only if > 30
  minutes) ([S29][S46], V2).
- Psychotherapy with the patient: 16-37 minutes -> 90832, 38-52 -> 90834, >= 53 -> 90837;
  with an E/M service the add-on codes 90833 / 90836 / 90838 apply; under 16 minutes is not
  reportable as psychotherapy (APA Services, psychotherapy codes [S29]).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True)
class CodedLine:
    code: str
    units: int
    reason: str


@dataclass(frozen=True)
class NotCodable:
    """The documentation does not support a code; `reason` says why."""

    reason: str


def iv_administration_lines(minutes: Decimal | int | None) -> list[CodedLine] | NotCodable:
    """CPT lines for an IV administration of the documented duration (whole minutes)."""
    if minutes is None:
        return NotCodable("infusion start and stop times are not documented")
    whole = int(Decimal(minutes))  # partial minutes do not count toward a threshold
    if whole <= 0:
        return NotCodable("documented infusion duration is not positive")
    if whole <= 15:
        return [CodedLine("96374", 1, f"{whole} min <= 15 min is an IV push")]
    lines = [CodedLine("96365", 1, f"{whole} min > 15 min: IV infusion, initial hour")]
    beyond = whole - 60
    if beyond > 0:
        units = beyond // 60 + (1 if beyond % 60 > 30 else 0)
        if units:
            lines.append(CodedLine("96366", units, f"{beyond} min beyond the first hour: {units} additional hour(s)"))
    return lines


def psychotherapy_code(minutes: int | None, with_em_visit: bool = False) -> CodedLine | NotCodable:
    """The psychotherapy CPT code for the documented face-to-face minutes."""
    if minutes is None:
        return NotCodable("psychotherapy minutes are not documented")
    if minutes < 16:
        return NotCodable(f"{minutes} min is under the 16-minute minimum for psychotherapy codes")
    if minutes <= 37:
        code = "90833" if with_em_visit else "90832"
    elif minutes <= 52:
        code = "90836" if with_em_visit else "90834"
    else:
        code = "90838" if with_em_visit else "90837"
    kind = "add-on with E/M" if with_em_visit else "psychotherapy"
    return CodedLine(code, 1, f"{minutes} min {kind}")
