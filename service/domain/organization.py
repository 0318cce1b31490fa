"""The clinic, its practitioners and its locations."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, EmailStr, Field, StringConstraints

from .common import Address, DomainRecord, NonBlank


def npi_check_digit_ok(npi: str) -> bool:
    """Validate an NPI with the Luhn check digit over the '80840' prefix.

    Source: CMS, "Requirements for National Provider Identifier (NPI) and NPI Enumeration",
    the check digit is the Luhn formula (ISO/IEC 7812) applied to 80840 + the first 9 digits.
    """
    if len(npi) != 10 or not npi.isdigit():
        return False
    digits = [int(c) for c in "80840" + npi[:9]]
    total = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2 == 0:  # every second digit from the right of the payload is doubled
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return (10 - total % 10) % 10 == int(npi[9])


def _npi(value: str) -> str:
    if not npi_check_digit_ok(value):
        raise ValueError("not a valid NPI (10 digits with a Luhn check digit)")
    return value


NPI = Annotated[str, StringConstraints(pattern=r"^\d{10}$"), AfterValidator(_npi)]
Phone = Annotated[str, StringConstraints(pattern=r"^\+?[0-9 ()\-.]{7,20}$")]
Uri = Annotated[str, StringConstraints(pattern=r"^(https?://|urn:(oid|uuid):)[^\s]+$", max_length=200)]
PlaceOfService = Annotated[str, StringConstraints(pattern=r"^\d{2}$")]


class Clinic(DomainRecord):
    """A treatment clinic: the organization that owns all of its patients' records.

    `identifier_system` is the namespace URI under which the clinic's business keys (MRNs,
    session numbers) are unique; it is the `system` of every identifier we emit for it.
    """

    name: NonBlank
    npi: NPI | None = None
    tax_id: Annotated[str, StringConstraints(pattern=r"^\d{2}-?\d{7}$")] | None = None
    identifier_system: Annotated[str, StringConstraints(pattern=r"^https?://[^\s?#]+$", max_length=160)]
    """An http(s) namespace URL: per-kind identifier systems are derived from it by path."""
    phone: Phone | None = None
    address: Address | None = None
    rems_certified: bool = False
    """Certified as a SPRAVATO REMS healthcare setting (needed before esketamine is given)."""


class PractitionerRoleKind(StrEnum):
    PRESCRIBER = "prescriber"
    NURSE = "nurse"
    THERAPIST = "therapist"
    ANESTHESIA = "anesthesia"


class Practitioner(DomainRecord):
    """A clinician of the clinic, identified nationally by NPI."""

    npi: NPI
    family_name: NonBlank
    given_names: list[NonBlank] = Field(min_length=1, max_length=3)
    credentials: list[Annotated[str, StringConstraints(pattern=r"^[A-Za-z\-.]{1,12}$")]] = Field(
        default_factory=list, max_length=5
    )
    role: PractitionerRoleKind
    email: EmailStr | None = None
    phone: Phone | None = None


class Location(DomainRecord):
    """A place where sessions happen (treatment room, suite), with its CMS place of service."""

    name: NonBlank
    place_of_service: PlaceOfService = "11"
    """CMS Place of Service code; 11 = office (clinical-coding.md, CMS POS code set [S31])."""
    address: Address | None = None
    phone: Phone | None = None
