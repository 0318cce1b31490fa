"""Outcome status over time: response, partial response, remission and relapse.

Definitions (clinical-coding.md §1.6):
- PHQ-9 response: most recent total at least 50 % lower than the index (baseline) score;
  remission: most recent total < 5; index score eligibility: > 9
  (CMS159 / NCQA DRR-E [S15]).
- MADRS response: >= 50 % reduction from baseline [S16]; remission: <= 10 (Hawley 2002), many
  ketamine/esketamine trials use <= 12 — configurable, and the applied threshold is recorded.
- Partial response: a 25-49 % reduction, the conventional band below response
  (program convention; program.md names partial response as an outcome).
- Relapse: after response or remission was reached, a later score that no longer meets the
  response criterion and is back above the index threshold (PHQ-9 > 9 per CMS159 [S15];
  MADRS >= 20, the start of the moderate band [S16]). A program rule built on the cited
  thresholds, configurable.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from .scoring import Instrument


class OutcomeStatus(StrEnum):
    RESPONSE = "response"
    PARTIAL_RESPONSE = "partial-response"
    NON_RESPONSE = "non-response"
    REMISSION = "remission"
    RELAPSE = "relapse"
    NOT_EVALUABLE = "not-evaluable"


@dataclass(frozen=True)
class OutcomeRules:
    """Thresholds; defaults follow the sources in the module docstring."""

    response_reduction: Decimal = Decimal("0.5")
    partial_response_reduction: Decimal = Decimal("0.25")
    phq9_remission_below: int = 5
    phq9_index_above: int = 9
    madrs_remission_at_most: int = 10
    madrs_relapse_at_least: int = 20

    def remitted(self, instrument: Instrument, total: int) -> bool:
        if instrument is Instrument.PHQ9:
            return total < self.phq9_remission_below
        if instrument is Instrument.MADRS:
            return total <= self.madrs_remission_at_most
        raise ValueError(f"no remission rule for {instrument.value}")

    def above_index(self, instrument: Instrument, total: int) -> bool:
        if instrument is Instrument.PHQ9:
            return total > self.phq9_index_above
        if instrument is Instrument.MADRS:
            return total >= self.madrs_relapse_at_least
        raise ValueError(f"no index rule for {instrument.value}")

    def describe(self, instrument: Instrument) -> str:
        if instrument is Instrument.PHQ9:
            return f"PHQ-9 remission < {self.phq9_remission_below}; response >= 50% reduction (CMS159, NCQA DRR-E)"
        return f"MADRS remission <= {self.madrs_remission_at_most}; response >= 50% reduction"


DEFAULT_RULES = OutcomeRules()


@dataclass(frozen=True)
class ScorePoint:
    """One scored total at a time, with the id of the record it came from."""

    when: dt.datetime
    total: int
    record_id: str


@dataclass(frozen=True)
class OutcomePoint:
    point: ScorePoint
    reduction: Decimal | None
    status: OutcomeStatus


def reduction_from(baseline: int, total: int) -> Decimal | None:
    """Fractional reduction from baseline (0.5 = halved); None when baseline is 0."""
    if baseline <= 0:
        return None
    return ((Decimal(baseline) - Decimal(total)) / Decimal(baseline)).quantize(Decimal("0.001"))


def classify(
    instrument: Instrument, baseline: int, total: int, *, responded_before: bool = False, rules: OutcomeRules = DEFAULT_RULES
) -> OutcomeStatus:
    """Status of one follow-up score against the baseline."""
    reduction = reduction_from(baseline, total)
    if rules.remitted(instrument, total) and reduction is not None and reduction > 0:
        return OutcomeStatus.REMISSION
    if reduction is None:
        return OutcomeStatus.NOT_EVALUABLE
    if reduction >= rules.response_reduction:
        return OutcomeStatus.RESPONSE
    if responded_before and rules.above_index(instrument, total):
        return OutcomeStatus.RELAPSE
    if reduction >= rules.partial_response_reduction:
        return OutcomeStatus.PARTIAL_RESPONSE
    return OutcomeStatus.NON_RESPONSE


def trajectory(instrument: Instrument, points: list[ScorePoint], rules: OutcomeRules = DEFAULT_RULES) -> list[OutcomePoint]:
    """Outcome status at each score after the first (the baseline), in time order.

    The baseline point itself is returned with status not-evaluable. A baseline that is not
    above the index threshold (PHQ-9 <= 9) leaves every later point not-evaluable: response
    and remission are defined only from an elevated index score (CMS159 [S15]).
    """
    ordered = sorted(points, key=lambda p: (p.when, p.record_id))
    if not ordered:
        return []
    baseline = ordered[0]
    out = [OutcomePoint(baseline, None, OutcomeStatus.NOT_EVALUABLE)]
    eligible = rules.above_index(instrument, baseline.total)
    responded = False
    for point in ordered[1:]:
        if not eligible:
            out.append(OutcomePoint(point, reduction_from(baseline.total, point.total), OutcomeStatus.NOT_EVALUABLE))
            continue
        status = classify(instrument, baseline.total, point.total, responded_before=responded, rules=rules)
        responded = responded or status in (OutcomeStatus.RESPONSE, OutcomeStatus.REMISSION)
        if status is OutcomeStatus.RELAPSE:
            responded = False  # a new response must be reached before another relapse counts
        out.append(OutcomePoint(point, reduction_from(baseline.total, point.total), status))
    return out


def current_status(instrument: Instrument, points: list[ScorePoint], rules: OutcomeRules = DEFAULT_RULES) -> OutcomeStatus:
    track = trajectory(instrument, points, rules)
    return track[-1].status if len(track) > 1 else OutcomeStatus.NOT_EVALUABLE
