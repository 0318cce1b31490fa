"""The patient: identity and contact details as the clinic registers them."""

from __future__ import annotations

import datetime as dt
from enum import StrEnum

from pydantic import EmailStr, Field, field_validator

from .common import Address, DomainRecord, NonBlank, RecordKey
from .organization import Phone


class AdministrativeSex(StrEnum):
    """FHIR administrative gender (required binding on Patient.gender)."""

    MALE = "male"
    FEMALE = "female"
    OTHER = "other"
    UNKNOWN = "unknown"


class Patient(DomainRecord):
    """A patient of the clinic. `mrn` is the clinic's medical record number."""

    mrn: RecordKey
    family_name: NonBlank
    given_names: list[NonBlank] = Field(min_length=1, max_length=3)
    birth_date: dt.date
    sex: AdministrativeSex
    phone: Phone | None = None
    email: EmailStr | None = None
    address: Address | None = None

    @field_validator("birth_date")
    @classmethod
    def _plausible_birth_date(cls, value: dt.date) -> dt.date:
        if value > dt.date.today():
            raise ValueError("birth date is in the future")
        if value.year < 1900:
            raise ValueError("birth date before 1900")
        return value

    def age_on(self, day: dt.date) -> int:
        """Age in whole years on `day`."""
        years = day.year - self.birth_date.year
        if (day.month, day.day) < (self.birth_date.month, self.birth_date.day):
            years -= 1
        return years
