"""Insurance coverage of a patient: who pays, under which member id, plan and period.

The payer itself (name, identifiers, endpoint, coverage rules) is data in
`mappings/payers/<payer>.json`; a coverage record names it by `payer` key. Mapped to US Core
Coverage (us-core-coverage: relationship 1..1, member-id identifier typed v2-0203#MB,
class group/plan slices, payor max 1) and, inside PAS requests, to PAS Coverage
(clinical-coding.md §6.2, §6.3).
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Annotated

from pydantic import StringConstraints, model_validator

from .common import NonBlank, PatientRecord

MemberId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9\-]{1,40}$")]
PayerKey = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9\-]{1,40}$")]


class PayerType(StrEnum):
    MEDICARE = "medicare"
    MEDICAID = "medicaid"
    COMMERCIAL = "commercial"
    SELF_PAY = "self-pay"


class SubscriberRelationship(StrEnum):
    """FHIR subscriber-relationship codes the program uses."""

    SELF = "self"
    SPOUSE = "spouse"
    CHILD = "child"
    OTHER = "other"


class CoverageStatus(StrEnum):
    """FHIR Coverage.status (financial resource status)."""

    ACTIVE = "active"
    CANCELLED = "cancelled"


class CoverageRecord(PatientRecord):
    """One insurance coverage of a patient (the policy as shown on the member card)."""

    payer: PayerKey
    """Key of the payer in mappings/payers/ (e.g. "acme-commercial")."""
    payer_type: PayerType
    member_id: MemberId
    subscriber_id: MemberId | None = None
    """The subscriber's id when the patient is a dependant; defaults to member_id."""
    relationship: SubscriberRelationship = SubscriberRelationship.SELF
    group_id: MemberId | None = None
    group_name: NonBlank | None = None
    plan_id: MemberId | None = None
    plan_name: NonBlank | None = None
    period_start: dt.date
    period_end: dt.date | None = None
    status: CoverageStatus = CoverageStatus.ACTIVE
    rems_patient_enrolled: bool = False
    """The patient is enrolled in the SPRAVATO REMS (required before the first esketamine dose)."""
    rems_enrolled_on: dt.date | None = None

    @model_validator(mode="after")
    def _consistent(self) -> "CoverageRecord":
        if self.period_end is not None and self.period_end < self.period_start:
            raise ValueError("period_end is before period_start")
        if self.rems_enrolled_on is not None and not self.rems_patient_enrolled:
            raise ValueError("rems_enrolled_on needs rems_patient_enrolled = true")
        return self

    def active_on(self, day: dt.date) -> bool:
        return (
            self.status is CoverageStatus.ACTIVE
            and self.period_start <= day
            and (self.period_end is None or day <= self.period_end)
        )
