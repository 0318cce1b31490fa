"""Eligibility rules: treatment resistance, contraindications and pre-dose blood pressure.

- Treatment-resistant depression: no adequate response to at least two adequate
  antidepressant trials in the current episode (program.md; the operational TRD definition
  of IV-ketamine trials, Fava 2020 [S34]; SPRAVATO's label population [S28]). A trial is
  adequate when the dose was therapeutic and it lasted at least 6 weeks ("typically 6-8
  weeks each", program.md). Intolerance is not an adequate trial.
- Contraindications (exclude) and cautions (specialised protocol): program.md step 1 and
  clinical-coding.md §5.3.
- Pre-dose blood pressure: the SPRAVATO label cautions above about 140/90 ([S35], V2); the
  threshold is configurable per clinic.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Iterable

from .screening import CAUTIONS, CONTRAINDICATIONS, ContraindicationScreen, MedicationTrial, TrialOutcome

MIN_ADEQUATE_WEEKS = Decimal(6)
REQUIRED_FAILED_TRIALS = 2


@dataclass(frozen=True)
class BloodPressureThreshold:
    systolic: int = 140
    diastolic: int = 90

    def exceeded_by(self, systolic: int, diastolic: int) -> bool:
        return systolic > self.systolic or diastolic > self.diastolic


@dataclass(frozen=True)
class TrialAssessment:
    trial_id: str
    adequate: bool
    failed: bool
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class TreatmentResistance:
    met: bool
    adequate_failed_trials: tuple[str, ...]
    assessments: tuple[TrialAssessment, ...]
    rule: str = "at least 2 adequate (therapeutic dose, >= 6 weeks) failed trials in the current episode"


def assess_trial(trial: MedicationTrial, as_of: dt.date, min_weeks: Decimal = MIN_ADEQUATE_WEEKS) -> TrialAssessment:
    reasons: list[str] = []
    weeks = trial.duration_weeks(as_of)
    if not trial.adequate_dose:
        reasons.append("dose not therapeutic")
    if weeks < min_weeks:
        reasons.append(f"{weeks} weeks is shorter than {min_weeks}")
    if trial.outcome is TrialOutcome.INTOLERANCE:
        reasons.append("stopped for intolerance")
    if not trial.current_episode:
        reasons.append("not in the current episode")
    adequate = not reasons
    failed = trial.outcome in (TrialOutcome.NO_RESPONSE, TrialOutcome.PARTIAL_RESPONSE)
    if not failed:
        reasons.append(f"outcome {trial.outcome.value} is not a failure")
    return TrialAssessment(trial.id, adequate, failed, tuple(reasons))


def treatment_resistance(
    trials: Iterable[MedicationTrial], as_of: dt.date, min_weeks: Decimal = MIN_ADEQUATE_WEEKS
) -> TreatmentResistance:
    assessments = tuple(assess_trial(t, as_of, min_weeks) for t in sorted(trials, key=lambda t: (t.start_date, t.id)))
    failed = tuple(a.trial_id for a in assessments if a.adequate and a.failed)
    return TreatmentResistance(len(failed) >= REQUIRED_FAILED_TRIALS, failed, assessments)


@dataclass(frozen=True)
class SafetyFlag:
    kind: str  # "contraindication" | "caution"
    item: str
    reason: str


def screen_flags(
    screen: ContraindicationScreen, threshold: BloodPressureThreshold = BloodPressureThreshold()
) -> list[SafetyFlag]:
    """Contraindications and cautions found by a screen, including its blood pressure."""
    flags = [
        SafetyFlag("contraindication" if f.item in CONTRAINDICATIONS else "caution", f.item.value, "reported present")
        for f in screen.findings
        if f.present and (f.item in CONTRAINDICATIONS or f.item in CAUTIONS)
    ]
    if screen.systolic_mmhg is not None and screen.diastolic_mmhg is not None:
        flag = pre_dose_bp_flag(screen.systolic_mmhg, screen.diastolic_mmhg, threshold)
        if flag and not any(f.item == flag.item for f in flags):
            flags.append(flag)
    return flags


def pre_dose_bp_flag(systolic: int, diastolic: int, threshold: BloodPressureThreshold = BloodPressureThreshold()) -> SafetyFlag | None:
    """A contraindication flag when blood pressure is above the configured threshold."""
    if threshold.exceeded_by(systolic, diastolic):
        return SafetyFlag(
            "contraindication",
            "uncontrolled_hypertension",
            f"blood pressure {systolic}/{diastolic} above {threshold.systolic}/{threshold.diastolic}",
        )
    return None
