"""Shared building blocks of domain records: the record base class and value types."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

RecordKey = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9\-._]{0,63}$"),
]
"""A clinic-assigned business key: letters, digits, '-', '.', '_' (1-64 characters)."""

NonBlank = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]


def _aware(value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("a time zone offset is required (e.g. 2026-03-02T09:00:00-05:00)")
    return value


Instant = Annotated[dt.datetime, AfterValidator(_aware)]
"""A timestamp that must carry its UTC offset: FHIR dateTime with time needs one."""

PositiveDecimal = Annotated[Decimal, Field(gt=0, max_digits=9, decimal_places=3)]


class DomainRecord(BaseModel):
    """Base of every record a clinic documents.

    `id` is the clinic's business key for the record; `clinic_id` names the clinic that owns it
    (tenancy). Unknown fields are rejected so a typo never disappears silently.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    id: RecordKey
    clinic_id: RecordKey


class PatientRecord(DomainRecord):
    """A record that belongs to one patient's chart."""

    patient_id: RecordKey


class Address(BaseModel):
    """A postal address (US)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    line: list[NonBlank] = Field(default_factory=list, max_length=4)
    city: NonBlank | None = None
    state: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] | None = None
    postal_code: Annotated[str, StringConstraints(pattern=r"^\d{5}(-\d{4})?$")] | None = None
    country: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")] = "US"
