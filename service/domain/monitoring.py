"""Monitoring during and after a session: vital signs and adverse events."""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import Field, StringConstraints, model_validator

from .common import Instant, PatientRecord, RecordKey, Text


class VitalsPhase(StrEnum):
    """When in the session a reading was taken (SPRAVATO: pre-dose, ~40 min, pre-discharge)."""

    SCREENING = "screening"
    PRE_DOSE = "pre-dose"
    INTRA_SESSION = "intra-session"
    POST_DOSE = "post-dose"
    PRE_DISCHARGE = "pre-discharge"


class VitalsReading(PatientRecord):
    """One time-stamped set of vital signs; every measurement present becomes one Observation."""

    session_id: RecordKey | None = None
    taken_at: Instant
    phase: VitalsPhase
    systolic_mmhg: int | None = Field(default=None, ge=50, le=300)
    diastolic_mmhg: int | None = Field(default=None, ge=20, le=200)
    heart_rate_bpm: int | None = Field(default=None, ge=20, le=250)
    spo2_percent: int | None = Field(default=None, ge=50, le=100)
    respiratory_rate: int | None = Field(default=None, ge=4, le=60)
    temperature_c: Decimal | None = Field(default=None, ge=30, le=45, max_digits=4, decimal_places=1)
    performer_id: RecordKey | None = None

    @model_validator(mode="after")
    def _complete(self) -> "VitalsReading":
        if (self.systolic_mmhg is None) != (self.diastolic_mmhg is None):
            raise ValueError("systolic_mmhg and diastolic_mmhg go together")
        if self.systolic_mmhg is not None and self.systolic_mmhg <= (self.diastolic_mmhg or 0):
            raise ValueError("systolic_mmhg must be above diastolic_mmhg")
        if all(
            v is None
            for v in (self.systolic_mmhg, self.heart_rate_bpm, self.spo2_percent, self.respiratory_rate, self.temperature_c)
        ):
            raise ValueError("a vitals reading needs at least one measurement")
        return self

    def measurements(self) -> list[str]:
        """Names of the measurements present, in a fixed order."""
        present = {
            "blood_pressure": self.systolic_mmhg,
            "heart_rate": self.heart_rate_bpm,
            "spo2": self.spo2_percent,
            "respiratory_rate": self.respiratory_rate,
            "body_temperature": self.temperature_c,
        }
        return [name for name, value in present.items() if value is not None]


class AdverseEventSeverity(StrEnum):
    """FHIR R4 AdverseEvent.severity (mild | moderate | severe)."""

    MILD = "mild"
    MODERATE = "moderate"
    SEVERE = "severe"


class AdverseEventAction(StrEnum):
    NONE = "none"
    OBSERVATION_EXTENDED = "observation-extended"
    INFUSION_PAUSED = "infusion-paused"
    INFUSION_RATE_REDUCED = "infusion-rate-reduced"
    INFUSION_STOPPED = "infusion-stopped"
    MEDICATION_GIVEN = "medication-given"
    REASSURANCE = "reassurance"
    TRANSFERRED = "transferred-to-emergency-care"


class AdverseEventOutcome(StrEnum):
    """FHIR R4 AdverseEvent.outcome codes."""

    RESOLVED = "resolved"
    RECOVERING = "recovering"
    ONGOING = "ongoing"
    RESOLVED_WITH_SEQUELAE = "resolvedWithSequelae"
    FATAL = "fatal"
    UNKNOWN = "unknown"


class AdverseEvent(PatientRecord):
    """Something that went wrong during or after a session, with what was done about it."""

    session_id: RecordKey | None = None
    occurred_at: Instant
    event: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{1,40}$")]
    """Key in mappings/terminology/adverse-events.json (e.g. "nausea")."""
    severity: AdverseEventSeverity
    serious: bool = False
    actions: list[AdverseEventAction] = Field(default_factory=list, max_length=5)
    outcome: AdverseEventOutcome = AdverseEventOutcome.RESOLVED
    recorder_id: RecordKey | None = None
    note: Text | None = None
