"""Patient -> US Core Patient (us-core-patient): MRN identifier, name, gender, birth date."""

from __future__ import annotations

from ...domain.patient import Patient
from ..context import MappingContext
from ..elements import address, human_name, meta, prune
from ..mapper import builds

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


@builds(Patient)
def patient(person: Patient, ctx: MappingContext) -> list[dict]:
    mrn = {
        "use": "usual",
        "type": {"coding": [{"system": V2_0203, "code": "MR", "display": "Medical record number"}], "text": "MRN"},
        "system": ctx.system("mrn"),
        "value": person.mrn,
        "assigner": {**ctx.organization_ref(), "display": ctx.clinic.name},
    }
    return [
        prune(
            {
                "resourceType": "Patient",
                "id": ctx.id("Patient", "patients", person.id),
                "meta": meta("us-core-patient"),
                "identifier": [mrn, ctx.identifier("patients", person.id, use="secondary")],
                "active": True,
                "name": [human_name(person.family_name, person.given_names)],
                "telecom": [
                    *([{"system": "phone", "value": person.phone, "use": "home"}] if person.phone else []),
                    *([{"system": "email", "value": person.email}] if person.email else []),
                ],
                "gender": person.sex.value,
                "birthDate": person.birth_date.isoformat(),
                "address": [address(person.address)] if person.address else [],
                "managingOrganization": ctx.organization_ref(),
            }
        )
    ]


