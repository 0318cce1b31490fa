"""Clinic -> Organization, Practitioner -> Practitioner, Location -> Location (US Core)."""

from __future__ import annotations

from ...domain.organization import Clinic, Location, Practitioner
from ...terminology import system
from ..context import MappingContext
from ..elements import address, human_name, meta, prune, telecom
from ..mapper import builds

TAX_ID_SYSTEM = "urn:oid:2.16.840.1.113883.4.4"  # US Employer Identification Number (IRS)


@builds(Clinic)
def organization(clinic: Clinic, ctx: MappingContext) -> list[dict]:
    """US Core Organization (us-core-organization): NPI, name, active, contact."""
    identifiers = [ctx.identifier("clinics", clinic.id)]
    if clinic.npi:
        identifiers.insert(0, {"system": system("us_npi"), "value": clinic.npi})
    if clinic.tax_id:
        identifiers.append({"system": TAX_ID_SYSTEM, "value": clinic.tax_id.replace("-", "")})
    return [
        prune(
            {
                "resourceType": "Organization",
                "id": ctx.id("Organization", "clinics", clinic.id),
                "meta": meta("us-core-organization"),
                "identifier": identifiers,
                "active": True,
                "type": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/organization-type",
                                "code": "prov",
                                "display": "Healthcare Provider",
                            }
                        ]
                    }
                ],
                "name": clinic.name,
                "telecom": telecom(clinic.phone),
                "address": [address(clinic.address)] if clinic.address else [],
            }
        )
    ]


@builds(Practitioner)
def practitioner(person: Practitioner, ctx: MappingContext) -> list[dict]:
    """US Core Practitioner (us-core-practitioner): NPI identifier slice and name."""
    return [
        prune(
            {
                "resourceType": "Practitioner",
                "id": ctx.id("Practitioner", "practitioners", person.id),
                "meta": meta("us-core-practitioner"),
                "identifier": [
                    {"system": system("us_npi"), "value": person.npi},
                    ctx.identifier("practitioners", person.id),
                ],
                "active": True,
                "name": [
                    {
                        **human_name(person.family_name, person.given_names),
                        "suffix": list(person.credentials),
                    }
                ],
                "telecom": telecom(person.phone, person.email),
            }
        )
    ]


@builds(Location)
def location(place: Location, ctx: MappingContext) -> list[dict]:
    """US Core Location (us-core-location) with its CMS place-of-service type."""
    return [
        prune(
            {
                "resourceType": "Location",
                "id": ctx.id("Location", "locations", place.id),
                "meta": meta("us-core-location"),
                "identifier": [ctx.identifier("locations", place.id)],
                "status": "active",
                "name": place.name,
                "type": [
                    {
                        "coding": [
                            {
                                "system": system("pos"),
                                "code": place.place_of_service,
                            }
                        ]
                    }
                ],
                "telecom": telecom(place.phone),
                "address": address(place.address) if place.address else None,
                "managingOrganization": ctx.organization_ref(),
            }
        )
    ]
