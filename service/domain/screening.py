"""Screening and eligibility records: diagnoses, prior antidepressant trials, the
contraindication screen and medical clearance.

The suicide-risk screen is a C-SSRS questionnaire (see questionnaires.py).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from .common import NonBlank, PatientRecord, RecordKey, Text

Icd10Code = Annotated[str, StringConstraints(pattern=r"^[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$")]
"""ICD-10-CM, written with the dot as FHIR expects (clinical-coding.md §5.1)."""


class ConditionClinicalStatus(StrEnum):
    ACTIVE = "active"
    RECURRENCE = "recurrence"
    RELAPSE = "relapse"
    INACTIVE = "inactive"
    REMISSION = "remission"
    RESOLVED = "resolved"


class ConditionVerification(StrEnum):
    CONFIRMED = "confirmed"
    PROVISIONAL = "provisional"
    DIFFERENTIAL = "differential"
    UNCONFIRMED = "unconfirmed"
    REFUTED = "refuted"


class Diagnosis(PatientRecord):
    """A diagnosed condition: the depressive disorder being treated, or a comorbidity that
    matters for eligibility (hypertension, bipolar disorder, substance use, ...)."""

    icd10: Icd10Code
    clinical_status: ConditionClinicalStatus = ConditionClinicalStatus.ACTIVE
    verification_status: ConditionVerification = ConditionVerification.CONFIRMED
    onset_date: dt.date | None = None
    recorded_on: dt.date
    recorder_id: RecordKey | None = None
    note: Text | None = None


@dataclass(frozen=True)
class MddClassification:
    """Episode and severity of a major depressive disorder ICD-10-CM code."""

    episode: str  # "single" | "recurrent"
    severity: str  # mild | moderate | severe | severe-psychotic | partial-remission | ...
    psychotic: bool


_MDD_SEVERITY = {
    "0": "mild",
    "1": "moderate",
    "2": "severe",
    "3": "severe-psychotic",
    "4": "partial-remission",
    "5": "full-remission",
    "9": "unspecified",
    "A": "unspecified",
    "89": "other-specified",
    "40": "remission-unspecified",
    "41": "partial-remission",
    "42": "full-remission",
}


def classify_mdd(icd10: str) -> MddClassification | None:
    """Episode (F32 single, F33 recurrent) and severity of an MDD code; None for other codes.

    Source: ICD-10-CM F32/F33 as listed in clinical-coding.md §5.1 (VSAC "Major Depression
    Including Remission" [S21]).
    """
    if not icd10.startswith(("F32.", "F33.")):
        return None
    episode = "single" if icd10.startswith("F32") else "recurrent"
    severity = _MDD_SEVERITY.get(icd10[4:])
    if severity is None or (episode == "single" and icd10[4:] in {"40", "41", "42"}):
        return None
    if episode == "recurrent" and icd10[4:] in {"4", "5", "A", "89"}:
        return None
    return MddClassification(episode, severity, psychotic=severity == "severe-psychotic")


class TrialOutcome(StrEnum):
    """How a prior antidepressant trial ended."""

    NO_RESPONSE = "no-response"
    PARTIAL_RESPONSE = "partial-response"
    INTOLERANCE = "intolerance"
    RESPONSE = "response"
    UNKNOWN = "unknown"


class TrialSource(StrEnum):
    PATIENT_REPORT = "patient-report"
    PRIOR_RECORDS = "prior-records"
    PHARMACY_RECORD = "pharmacy-record"
    EHR = "ehr"


class MedicationTrial(PatientRecord):
    """One prior antidepressant (or augmentation) trial, as reported or found in records."""

    drug: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,40}$")]
    """Key of the drug in mappings/terminology/antidepressants.json (e.g. "sertraline")."""
    daily_dose_mg: Decimal = Field(gt=0, le=3000, max_digits=7, decimal_places=2)
    start_date: dt.date
    end_date: dt.date | None = None
    """None while the patient is still taking it."""
    adequate_dose: bool
    """Clinician's judgement that the dose was therapeutic for this drug."""
    outcome: TrialOutcome
    current_episode: bool = True
    source: TrialSource = TrialSource.PATIENT_REPORT
    recorded_on: dt.date
    recorder_id: RecordKey | None = None

    @model_validator(mode="after")
    def _dates_in_order(self) -> "MedicationTrial":
        if self.end_date is not None and self.end_date < self.start_date:
            raise ValueError("end_date is before start_date")
        if self.start_date > self.recorded_on:
            raise ValueError("start_date is after recorded_on")
        if self.end_date is not None and self.end_date > self.recorded_on:
            raise ValueError("end_date is after recorded_on: a trial's history cannot end in the future")
        return self

    def duration_weeks(self, as_of: dt.date) -> Decimal:
        end = min(self.end_date or as_of, as_of)
        return (Decimal((end - self.start_date).days) / Decimal(7)).quantize(Decimal("0.1"))


class ScreenItem(StrEnum):
    """What the pre-treatment screen asks about (program.md step 1; clinical-coding.md §5.3).

    The first group excludes treatment, the second needs a specialised protocol.
    """

    UNCONTROLLED_HYPERTENSION = "uncontrolled_hypertension"
    RECENT_MYOCARDIAL_INFARCTION = "recent_myocardial_infarction"
    UNSTABLE_ANGINA = "unstable_angina"
    ACTIVE_PSYCHOSIS = "active_psychosis"
    ANEURYSMAL_VASCULAR_DISEASE = "aneurysmal_vascular_disease"
    ARTERIOVENOUS_MALFORMATION = "arteriovenous_malformation"
    INTRACEREBRAL_HEMORRHAGE = "intracerebral_hemorrhage"
    KETAMINE_HYPERSENSITIVITY = "ketamine_hypersensitivity"
    PREGNANCY = "pregnancy"
    BIPOLAR_DISORDER = "bipolar_disorder"
    SUBSTANCE_USE_DISORDER = "substance_use_disorder"


CONTRAINDICATIONS = frozenset(
    {
        ScreenItem.UNCONTROLLED_HYPERTENSION,
        ScreenItem.RECENT_MYOCARDIAL_INFARCTION,
        ScreenItem.UNSTABLE_ANGINA,
        ScreenItem.ACTIVE_PSYCHOSIS,
        ScreenItem.ANEURYSMAL_VASCULAR_DISEASE,
        ScreenItem.ARTERIOVENOUS_MALFORMATION,
        ScreenItem.INTRACEREBRAL_HEMORRHAGE,
        ScreenItem.KETAMINE_HYPERSENSITIVITY,
    }
)
"""Exclude treatment (program.md; SPRAVATO label contraindications, clinical-coding.md §5.3)."""

CAUTIONS = frozenset({ScreenItem.BIPOLAR_DISORDER, ScreenItem.SUBSTANCE_USE_DISORDER, ScreenItem.PREGNANCY})
"""Need a specialised protocol (program.md step 1); the label advises against use in
pregnancy (clinical-coding.md §5.3, V2)."""


class ScreenFinding(BaseModel):
    """One answered screen question."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    item: ScreenItem
    present: bool
    note: Text | None = None


class ContraindicationScreen(PatientRecord):
    """The contraindication and caution screen done before the first session."""

    screened_on: dt.date
    practitioner_id: RecordKey
    findings: list[ScreenFinding] = Field(min_length=1)
    systolic_mmhg: int | None = Field(default=None, ge=50, le=300)
    diastolic_mmhg: int | None = Field(default=None, ge=20, le=200)

    @model_validator(mode="after")
    def _one_finding_per_item(self) -> "ContraindicationScreen":
        items = [f.item for f in self.findings]
        if len(items) != len(set(items)):
            raise ValueError("each screen item may be answered once")
        if (self.systolic_mmhg is None) != (self.diastolic_mmhg is None):
            raise ValueError("systolic_mmhg and diastolic_mmhg go together")
        if self.systolic_mmhg is not None and self.systolic_mmhg <= (self.diastolic_mmhg or 0):
            raise ValueError("systolic_mmhg must be above diastolic_mmhg")
        return self


class MedicalClearance(PatientRecord):
    """Medical clearance for treatment, given (or refused) by a practitioner."""

    assessed_on: dt.date
    practitioner_id: RecordKey
    cleared: bool
    valid_until: dt.date | None = None
    summary: NonBlank | None = None

    @model_validator(mode="after")
    def _validity(self) -> "MedicalClearance":
        if self.valid_until is not None and self.valid_until < self.assessed_on:
            raise ValueError("valid_until is before assessed_on")
        return self
