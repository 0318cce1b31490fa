"""Payer criteria pre-check: each criterion of a payer's service rule (mappings/payers/) is
met, missing or not applicable, with the evidence and links to the records behind it.

Rules come from the payer file; the clinical logic from the domain: treatment resistance
(`service.domain.eligibility.treatment_resistance`, >= N adequate failed trials),
contraindications (`screen_flags`), outcome status (`service.domain.outcomes.trajectory`).
MDD codes with psychotic features (F32.3/F33.3) and unspecified codes (F32.9/F32.A) are never
accepted, whatever a payer file lists (clinical-coding.md §5.1).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from ..domain.administration import Agent
from ..domain.coverage import CoverageRecord
from ..domain.eligibility import screen_flags, treatment_resistance
from ..domain.outcomes import DEFAULT_RULES, OutcomeRules, ScorePoint, trajectory
from ..domain.scoring import Instrument
from ..domain.screening import ConditionClinicalStatus, ConditionVerification, classify_mdd
from ..payers import Payer, ServiceRule
from .chart import Link, PatientChart

NEVER_ACCEPTED_ICD10 = frozenset({"F32.3", "F33.3", "F32.9", "F32.A"})
"""Psychotic features exclude ketamine programs; unspecified codes rarely meet necessity (§5.1)."""
SERVICE_AGENT = {"iv-ketamine-series": Agent.KETAMINE, "esketamine-course": Agent.ESKETAMINE}


class Status(StrEnum):
    MET = "met"
    MISSING = "missing"
    NOT_APPLICABLE = "not-applicable"


@dataclass(frozen=True)
class Criterion:
    key: str
    title: str
    status: Status
    evidence: str
    rule: str
    links: tuple[Link, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key, "title": self.title, "status": self.status.value, "evidence": self.evidence,
            "rule": self.rule, "links": [link.as_dict() for link in self.links],
        }


@dataclass(frozen=True)
class Checklist:
    payer: str
    service: str
    coverage_id: str
    as_of: dt.date
    covered: bool
    criteria: tuple[Criterion, ...]
    not_covered_reason: str | None = None
    evidence_links: tuple[Link, ...] = field(default=())

    @property
    def ready(self) -> bool:
        return self.covered and all(c.status is not Status.MISSING for c in self.criteria)

    @property
    def status(self) -> str:
        if not self.covered:
            return "not-covered"
        return "ready" if self.ready else "incomplete"

    @property
    def missing(self) -> list[Criterion]:
        return [c for c in self.criteria if c.status is Status.MISSING]

    def as_dict(self) -> dict[str, Any]:
        return {
            "payer": self.payer, "service": self.service, "coverage_id": self.coverage_id, "as_of": self.as_of.isoformat(),
            "status": self.status, "covered": self.covered, "not_covered_reason": self.not_covered_reason,
            "criteria": [c.as_dict() for c in self.criteria],
            "summary": {s.value: sum(1 for c in self.criteria if c.status is s) for s in Status},
        }


def _within(moment: dt.datetime, as_of: dt.date, days: int) -> bool:
    day = moment.date()
    return as_of - dt.timedelta(days=days) <= day <= as_of


def _coverage_criterion(chart: PatientChart, coverage: CoverageRecord, payer: Payer, as_of: dt.date) -> Criterion:
    link = chart.link(coverage)
    rule = f"coverage with {payer.name} active on {as_of.isoformat()}"
    if coverage.payer != payer.key:
        return Criterion("coverage", "Active coverage", Status.MISSING, f"coverage names payer {coverage.payer!r}", rule, (link,))
    if not coverage.active_on(as_of):
        end = coverage.period_end.isoformat() if coverage.period_end else "open"
        return Criterion("coverage", "Active coverage", Status.MISSING,
                         f"coverage {coverage.status.value}, period {coverage.period_start.isoformat()}..{end}", rule, (link,))
    return Criterion("coverage", "Active coverage", Status.MET,
                     f"member {coverage.member_id}, {coverage.payer_type.value}, since {coverage.period_start.isoformat()}", rule, (link,))


def _diagnosis(chart: PatientChart, allowed: list[str]) -> Criterion:
    accepted = [a for a in allowed if a not in NEVER_ACCEPTED_ICD10]
    rule = "active confirmed MDD diagnosis, ICD-10-CM one of " + ", ".join(accepted)
    current = [
        d for d in chart.diagnoses
        if d.clinical_status in (ConditionClinicalStatus.ACTIVE, ConditionClinicalStatus.RECURRENCE, ConditionClinicalStatus.RELAPSE)
        and d.verification_status is ConditionVerification.CONFIRMED
    ]
    good = [d for d in current if d.icd10 in accepted]
    excluded = [d for d in current if d.icd10 in NEVER_ACCEPTED_ICD10 or ((m := classify_mdd(d.icd10)) is not None and m.psychotic)]
    if good and not excluded:
        return Criterion("diagnosis", "MDD diagnosis", Status.MET, ", ".join(sorted({d.icd10 for d in good})), rule,
                         tuple(chart.link(d) for d in good))
    if excluded:
        codes = ", ".join(sorted({d.icd10 for d in excluded}))
        return Criterion("diagnosis", "MDD diagnosis", Status.MISSING,
                         f"{codes} on the chart: psychotic features / unspecified codes are not accepted (clinical-coding §5.1)",
                         rule, tuple(chart.link(d) for d in excluded))
    mdd = [d for d in current if classify_mdd(d.icd10) is not None]
    detail = ("MDD coded as " + ", ".join(sorted({d.icd10 for d in mdd})) + " - not in the payer's list") if mdd else "no active confirmed MDD diagnosis"
    return Criterion("diagnosis", "MDD diagnosis", Status.MISSING, detail, rule, tuple(chart.link(d) for d in mdd))


def _treatment_resistance(chart: PatientChart, min_failed: int, min_weeks: int, as_of: dt.date) -> Criterion:
    rule = f">= {min_failed} adequate (therapeutic dose, >= {min_weeks} weeks) failed antidepressant trials in the current episode"
    trials = [t for t in chart.trials if t.recorded_on <= as_of]
    result = treatment_resistance(trials, as_of, Decimal(min_weeks))
    by_id = {t.id: t for t in trials}
    failed = [by_id[i] for i in result.adequate_failed_trials]
    notes = [f"{a.trial_id}: {'; '.join(a.reasons)}" for a in result.assessments if a.trial_id not in result.adequate_failed_trials]
    evidence = f"{len(failed)} adequate failed trial(s): " + (", ".join(f"{t.drug} {t.daily_dose_mg} mg/day ({t.outcome.value})" for t in failed) or "none")
    if notes:
        evidence += "; not counted: " + " | ".join(notes)
    status = Status.MET if len(failed) >= min_failed else Status.MISSING
    return Criterion("treatment_resistance", "Treatment resistance", status, evidence, rule, tuple(chart.link(t) for t in trials))


def _baseline_severity(chart: PatientChart, rule_spec: Any, as_of: dt.date) -> Criterion:
    options = " or ".join(f"{t.instrument.upper()} >= {t.min_total}" for t in rule_spec.any_of)
    rule = f"{options} within {rule_spec.within_days} days"
    seen = []
    for threshold in rule_spec.any_of:
        for answers in reversed(chart.questionnaires(Instrument(threshold.instrument))):
            total = answers.result().total
            if total is None or not _within(answers.authored_at, as_of, rule_spec.within_days):
                continue
            seen.append(answers)
            if total >= threshold.min_total:
                return Criterion("baseline_severity", "Baseline severity", Status.MET,
                                 f"{threshold.instrument.upper()} {total} on {answers.authored_at.date().isoformat()}", rule,
                                 (chart.link(answers),))
    if seen:
        latest = ", ".join(f"{a.instrument.value.upper()} {a.result().total} on {a.authored_at.date().isoformat()}" for a in seen)
        return Criterion("baseline_severity", "Baseline severity", Status.MISSING, f"below threshold: {latest}", rule,
                         tuple(chart.link(a) for a in seen))
    return Criterion("baseline_severity", "Baseline severity", Status.MISSING,
                     f"no qualifying score in the {rule_spec.within_days} days before {as_of.isoformat()}", rule)


def _suicide_screen(chart: PatientChart, within_days: int, as_of: dt.date) -> Criterion:
    rule = f"C-SSRS screener within {within_days} days"
    recent = [q for q in chart.questionnaires(Instrument.CSSRS_SCREENER) if _within(q.authored_at, as_of, within_days)]
    if not recent:
        return Criterion("suicide_risk_screen", "Suicide-risk screen", Status.MISSING,
                         f"no C-SSRS in the {within_days} days before {as_of.isoformat()}", rule)
    latest = recent[-1]
    risk = latest.result().risk_level
    return Criterion("suicide_risk_screen", "Suicide-risk screen", Status.MET,
                     f"C-SSRS on {latest.authored_at.date().isoformat()}, risk {risk.value if risk else 'n/a'}", rule, (chart.link(latest),))


def _contraindications(chart: PatientChart, as_of: dt.date) -> Criterion:
    rule = "a contraindication screen with no contraindication present"
    screens = [s for s in chart.screens if s.screened_on <= as_of]
    if not screens:
        return Criterion("no_contraindications", "No contraindications", Status.MISSING, "no contraindication screen on the chart", rule)
    latest = screens[-1]
    flags = screen_flags(latest)
    contra = [f for f in flags if f.kind == "contraindication"]
    cautions = [f for f in flags if f.kind == "caution"]
    if contra:
        return Criterion("no_contraindications", "No contraindications", Status.MISSING,
                         "; ".join(f"{f.item}: {f.reason}" for f in contra), rule, (chart.link(latest),))
    note = f"screen of {latest.screened_on.isoformat()}: none present"
    if cautions:
        note += "; cautions (specialised protocol): " + ", ".join(f.item for f in cautions)
    return Criterion("no_contraindications", "No contraindications", Status.MET, note, rule, (chart.link(latest),))


def _rems(chart: PatientChart, coverage: CoverageRecord, service: str, spec: Any) -> list[Criterion]:
    out = []
    if spec.site_certified:
        ok = chart.clinic.rems_certified
        out.append(Criterion("rems_site", "REMS-certified site", Status.MET if ok else Status.MISSING,
                             f"{chart.clinic.name} {'is' if ok else 'is not'} SPRAVATO REMS certified",
                             "treating setting certified in the SPRAVATO REMS (clinical-coding §4.2)", (chart.link(chart.clinic),)))
    if spec.patient_enrolled:
        ok = coverage.rems_patient_enrolled
        when = f" on {coverage.rems_enrolled_on.isoformat()}" if coverage.rems_enrolled_on else ""
        out.append(Criterion("rems_patient", "Patient enrolled in REMS", Status.MET if ok else Status.MISSING,
                             f"patient {'enrolled' + when if ok else 'not enrolled'}", "patient enrolled before the first dose",
                             (chart.link(coverage),)))
    return out


def _prior_response(chart: PatientChart, spec: Any, as_of: dt.date, rules: OutcomeRules) -> Criterion:
    rule = f"{' or '.join(spec.statuses)} on {' / '.join(i.upper() for i in spec.instruments)} within {spec.within_days} days"
    for name in spec.instruments:
        instrument = Instrument(name)
        answers = chart.questionnaires(instrument)
        points = [ScorePoint(a.authored_at, t, a.id) for a in answers if (t := a.result().total) is not None]
        by_id = {a.id: a for a in answers}
        for point in reversed(trajectory(instrument, points, rules)[1:]):
            if point.status.value in spec.statuses and _within(point.point.when, as_of, spec.within_days):
                baseline = min(points, key=lambda p: (p.when, p.record_id))
                return Criterion("prior_response", "Response or remission documented", Status.MET,
                                 f"{name.upper()} {baseline.total} -> {point.point.total} ({point.status.value}) on "
                                 f"{point.point.when.date().isoformat()}", rule,
                                 (chart.link(by_id[baseline.record_id]), chart.link(by_id[point.point.record_id])))
    return Criterion("prior_response", "Response or remission documented", Status.MISSING, "no response or remission in the window", rule)


def evaluate(
    chart: PatientChart, payer: Payer, service: str, coverage: CoverageRecord, as_of: dt.date,
    outcome_rules: OutcomeRules = DEFAULT_RULES,
) -> Checklist:
    """The pre-check checklist of `service` for this patient under `payer`."""
    rule: ServiceRule = payer.service(service)
    spec = rule.criteria
    items: list[Criterion] = [_coverage_criterion(chart, coverage, payer, as_of)]
    na = Status.NOT_APPLICABLE
    items.append(_diagnosis(chart, spec.diagnosis.allowed_icd10) if spec.diagnosis
                 else Criterion("diagnosis", "MDD diagnosis", na, "not required by this payer", "-"))
    if spec.treatment_resistance:
        items.append(_treatment_resistance(chart, spec.treatment_resistance.min_failed_trials, spec.treatment_resistance.min_weeks, as_of))
    else:
        items.append(Criterion("treatment_resistance", "Treatment resistance", na, "not required by this payer", "-"))
    if spec.baseline_severity:
        items.append(_baseline_severity(chart, spec.baseline_severity, as_of))
    else:
        items.append(Criterion("baseline_severity", "Baseline severity", na, "not required by this payer", "-"))
    if spec.suicide_risk_screen:
        items.append(_suicide_screen(chart, spec.suicide_risk_screen.within_days, as_of))
    else:
        items.append(Criterion("suicide_risk_screen", "Suicide-risk screen", na, "not required by this payer", "-"))
    items.append(_contraindications(chart, as_of) if spec.no_contraindications
                 else Criterion("no_contraindications", "No contraindications", na, "not required by this payer", "-"))
    if spec.rems:
        items.extend(_rems(chart, coverage, service, spec.rems))
    else:
        items.append(Criterion("rems", "SPRAVATO REMS", na,
                               "esketamine only" if service != "esketamine-course" else "not required by this payer", "-"))
    if spec.prior_response:
        items.append(_prior_response(chart, spec.prior_response, as_of, outcome_rules))
    return Checklist(payer.key, service, coverage.id, as_of, rule.covered, tuple(items), rule.not_covered_reason)
