"""Maintenance decisions after an induction course (program.md step 6)."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from pydantic import model_validator

from .common import NonBlank, PatientRecord, RecordKey


class MaintenanceChoice(StrEnum):
    CONTINUE_MONTHLY = "continue-monthly"
    CONTINUE_QUARTERLY = "continue-quarterly"
    TAPER = "taper"
    DISCONTINUE = "discontinue"
    RE_INDUCTION = "re-induction"


class MaintenanceDecision(PatientRecord):
    """The recorded decision on maintenance sessions, with the outcome it was based on."""

    enrollment_id: RecordKey
    decided_on: dt.date
    decision: MaintenanceChoice
    practitioner_id: RecordKey
    rationale: NonBlank
    next_review_on: dt.date | None = None

    @model_validator(mode="after")
    def _review_after_decision(self) -> "MaintenanceDecision":
        if self.next_review_on is not None and self.next_review_on < self.decided_on:
            raise ValueError("next_review_on is before decided_on")
        return self
