"""Scoring of the program's questionnaires, with severity bands and safety flags.

Each instrument cites the source of its scoring rule (clinical-coding.md, section 1):
- PHQ-9: sum of items 1-9 (0-27); bands 0-4 minimal, 5-9 mild, 10-14 moderate,
  15-19 moderately severe, 20-27 severe (Kroenke, Spitzer, Williams 2001 [S13]); item 10
  (difficulty) is not scored; any non-zero item 9 raises a safety flag (program rule).
- GAD-7: sum of items 1-7 (0-21); bands 0-4 minimal, 5-9 mild, 10-14 moderate, 15-21 severe
  (Spitzer et al. 2006 [S14]).
- C-SSRS screener: no total; risk level from the triage logic [S19] (V2): Q4, Q5 or Q6b yes
  -> high; Q3 yes or lifetime behaviour (Q6 yes) -> moderate; Q1 or Q2 yes -> low.
- MADRS: 10 items 0-6, total 0-60; bands 0-6 normal, 7-19 mild, 20-34 moderate, 35-60 severe
  ([S16], V2).
- CADSS: 23 items; CADSS-6 = items 1, 2, 6, 7, 15, 22 (Rodrigues et al. 2021 [S18]). The
  0-4 item rating (total 0-92) is unverified (U) in clinical-coding.md; it is what the
  program's form uses, and results carry that caveat.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Instrument(StrEnum):
    PHQ9 = "phq9"
    GAD7 = "gad7"
    CSSRS_SCREENER = "cssrs_screener"
    MADRS = "madrs"
    CADSS = "cadss"


@dataclass(frozen=True)
class Band:
    low: int
    high: int
    label: str


@dataclass(frozen=True)
class InstrumentSpec:
    """Items an instrument has, the answer range of each, and how it is scored."""

    instrument: Instrument
    scored_items: tuple[str, ...]
    min_points: int
    max_points: int
    optional_items: tuple[str, ...] = ()
    bands: tuple[Band, ...] = ()
    yes_no: bool = False
    source: str = ""

    @property
    def all_items(self) -> tuple[str, ...]:
        return self.scored_items + self.optional_items

    @property
    def max_total(self) -> int:
        return self.max_points * len(self.scored_items)


PHQ9 = InstrumentSpec(
    Instrument.PHQ9,
    scored_items=tuple(str(i) for i in range(1, 10)),
    optional_items=("10",),
    min_points=0,
    max_points=3,
    bands=(
        Band(0, 4, "minimal"),
        Band(5, 9, "mild"),
        Band(10, 14, "moderate"),
        Band(15, 19, "moderately severe"),
        Band(20, 27, "severe"),
    ),
    source="Kroenke K, Spitzer RL, Williams JB. J Gen Intern Med 2001;16:606-613 [S13]",
)
GAD7 = InstrumentSpec(
    Instrument.GAD7,
    scored_items=tuple(str(i) for i in range(1, 8)),
    min_points=0,
    max_points=3,
    bands=(Band(0, 4, "minimal"), Band(5, 9, "mild"), Band(10, 14, "moderate"), Band(15, 21, "severe")),
    source="Spitzer RL et al. Arch Intern Med 2006;166:1092-1097 [S14]",
)
CSSRS_SCREENER = InstrumentSpec(
    Instrument.CSSRS_SCREENER,
    scored_items=("1", "2", "6"),
    optional_items=("3", "4", "5", "6b"),
    min_points=0,
    max_points=1,
    yes_no=True,
    source="C-SSRS screener triage logic [S19] (V2); item codes HL7 BHP example [S10]",
)
MADRS = InstrumentSpec(
    Instrument.MADRS,
    scored_items=tuple(str(i) for i in range(1, 11)),
    min_points=0,
    max_points=6,
    bands=(Band(0, 6, "normal"), Band(7, 19, "mild"), Band(20, 34, "moderate"), Band(35, 60, "severe")),
    source="MADRS bands [S16] (V2); Hawley et al. 2002 for remission cut-offs",
)
CADSS = InstrumentSpec(
    Instrument.CADSS,
    scored_items=tuple(str(i) for i in range(1, 24)),
    min_points=0,
    max_points=4,
    source="CADSS 23 items, CADSS-6 items 1,2,6,7,15,22 (Rodrigues 2021 [S18]); 0-4 rating U",
)

SPECS: dict[Instrument, InstrumentSpec] = {s.instrument: s for s in (PHQ9, GAD7, CSSRS_SCREENER, MADRS, CADSS)}
CADSS6_ITEMS = ("1", "2", "6", "7", "15", "22")
PHQ9_SUICIDALITY_ITEM = "9"


class SuicideRisk(StrEnum):
    NONE = "none"
    LOW = "low"
    MODERATE = "moderate"
    HIGH = "high"


@dataclass(frozen=True)
class ScoreResult:
    """The scored outcome of one questionnaire response."""

    instrument: Instrument
    total: int | None
    band: str | None
    flags: tuple[str, ...] = ()
    subscores: dict[str, int] = field(default_factory=dict)
    risk_level: SuicideRisk | None = None


class AnswerError(ValueError):
    """An answer set does not fit the instrument; `item` names the offending item."""

    def __init__(self, item: str | None, message: str) -> None:
        super().__init__(message)
        self.item = item


def check_answers(instrument: Instrument, answers: dict[str, int | bool]) -> None:
    """Reject unknown items, out-of-range points, missing scored items and, for the C-SSRS,
    answers to questions its skip logic does not ask."""
    spec = SPECS[instrument]
    for item, value in answers.items():
        if item not in spec.all_items:
            raise AnswerError(item, f"{instrument.value} has no item {item!r}")
        if spec.yes_no:
            if not isinstance(value, bool):
                raise AnswerError(item, f"item {item} takes true or false")
        elif isinstance(value, bool) or not isinstance(value, int):
            raise AnswerError(item, f"item {item} takes whole points")
        elif not spec.min_points <= value <= spec.max_points:
            raise AnswerError(item, f"item {item} must be {spec.min_points}-{spec.max_points}")
    missing = [i for i in spec.scored_items if i not in answers]
    if missing:
        raise AnswerError(missing[0], f"item {missing[0]} is required to score {instrument.value}")
    if instrument is Instrument.CSSRS_SCREENER:
        if not answers["2"]:
            for item in ("3", "4", "5"):
                if item in answers:
                    raise AnswerError(item, f"item {item} is asked only when item 2 is yes")
        elif any(i not in answers for i in ("3", "4", "5")):
            raise AnswerError("3", "items 3, 4 and 5 are required when item 2 is yes")
        if not answers["6"] and "6b" in answers:
            raise AnswerError("6b", "item 6b is asked only when item 6 is yes")
        if answers["6"] and "6b" not in answers:
            raise AnswerError("6b", "item 6b is required when item 6 is yes")


def band_for(spec: InstrumentSpec, total: int) -> str | None:
    for band in spec.bands:
        if band.low <= total <= band.high:
            return band.label
    return None


def cssrs_risk(answers: dict[str, int | bool]) -> SuicideRisk:
    """C-SSRS screener triage level [S19]."""
    if answers.get("4") or answers.get("5") or answers.get("6b"):
        return SuicideRisk.HIGH
    if answers.get("3") or answers.get("6"):
        return SuicideRisk.MODERATE
    if answers.get("1") or answers.get("2"):
        return SuicideRisk.LOW
    return SuicideRisk.NONE


def score(instrument: Instrument, answers: dict[str, int | bool]) -> ScoreResult:
    """Score a complete answer set (validated first with `check_answers`)."""
    check_answers(instrument, answers)
    spec = SPECS[instrument]
    if instrument is Instrument.CSSRS_SCREENER:
        risk = cssrs_risk(answers)
        flags = ("suicide-risk-" + risk.value,) if risk is not SuicideRisk.NONE else ()
        return ScoreResult(instrument, None, None, flags, risk_level=risk)
    total = sum(int(answers[i]) for i in spec.scored_items)
    flags: tuple[str, ...] = ()
    subscores: dict[str, int] = {}
    if instrument is Instrument.PHQ9 and int(answers[PHQ9_SUICIDALITY_ITEM]) > 0:
        flags = ("phq9-item9-positive",)
    if instrument is Instrument.CADSS:
        subscores["cadss6"] = sum(int(answers[i]) for i in CADSS6_ITEMS)
    return ScoreResult(instrument, total, band_for(spec, total), flags, subscores)
