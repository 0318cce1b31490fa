"""Enrollment of a patient in a program course (IV series, retreat, esketamine, maintenance)."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from pydantic import model_validator

from .common import PatientRecord, RecordKey


class CourseType(StrEnum):
    """The course formats the program runs (program.md, steps 3 and 6)."""

    IV_SERIES = "iv-series"
    """Twice weekly for 2-3 weeks, 4-6 infusions."""
    INTENSIVE_RETREAT = "intensive-retreat"
    """The same treatment compressed into 1-2 weeks."""
    ESKETAMINE_COURSE = "esketamine-course"
    """SPRAVATO induction and continuation under the REMS."""
    MAINTENANCE = "maintenance"
    """Monthly or quarterly sessions after an induction course."""


class EnrollmentStatus(StrEnum):
    """Mirrors FHIR EpisodeOfCare.status."""

    PLANNED = "planned"
    WAITLIST = "waitlist"
    ACTIVE = "active"
    ON_HOLD = "onhold"
    FINISHED = "finished"
    CANCELLED = "cancelled"


class Enrollment(PatientRecord):
    """A patient's enrollment in one course of the program."""

    course_type: CourseType
    status: EnrollmentStatus
    start_date: dt.date
    end_date: dt.date | None = None
    care_manager_id: RecordKey | None = None
    """The practitioner responsible for the course."""
    planned_sessions: int | None = None

    @model_validator(mode="after")
    def _dates_in_order(self) -> "Enrollment":
        if self.end_date is not None and self.end_date < self.start_date:
            raise ValueError("end_date is before start_date")
        if self.status is EnrollmentStatus.FINISHED and self.end_date is None:
            raise ValueError("a finished enrollment needs an end_date")
        if self.planned_sessions is not None and not 1 <= self.planned_sessions <= 60:
            raise ValueError("planned_sessions must be between 1 and 60")
        return self
