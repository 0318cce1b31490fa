"""The mapping context: what a builder needs beyond the record itself.

It carries the owning clinic (identifier namespaces, REMS certification) and makes
identifiers and references for any record of that clinic without a database lookup, because
every id is derived from (resource type, clinic namespace + record kind, record key).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ..domain.organization import Clinic
from .ids import resource_id


@dataclass(frozen=True)
class MappingContext:
    clinic: Clinic
    recorded_at: dt.datetime | None = None
    """When the record was written (Provenance.recorded); None uses the record's own time."""

    def system(self, kind: str) -> str:
        """Identifier system of a record kind at this clinic (e.g. .../administration-sessions)."""
        return f"{self.clinic.identifier_system.rstrip('/')}/{kind}"

    def identifier(self, kind: str, key: str, *, use: str | None = "usual") -> dict:
        ident = {"system": self.system(kind), "value": key}
        if use:
            ident["use"] = use
        return ident

    def id(self, resource_type: str, kind: str, key: str, part: str | None = None) -> str:
        """Id of the resource of `resource_type` that record (`kind`, `key`) produces.

        `part` distinguishes several resources of one type from one record (e.g. the
        heart-rate and blood-pressure Observations of one vitals reading).
        """
        value = key if part is None else f"{key}#{part}"
        return resource_id(resource_type, self.system(kind), value)

    def ref(self, resource_type: str, kind: str, key: str, part: str | None = None) -> dict:
        return {"reference": f"{resource_type}/{self.id(resource_type, kind, key, part)}"}

    def patient_ref(self, patient_id: str) -> dict:
        return self.ref("Patient", "patients", patient_id)

    def practitioner_ref(self, practitioner_id: str) -> dict:
        return self.ref("Practitioner", "practitioners", practitioner_id)

    def organization_ref(self) -> dict:
        return self.ref("Organization", "clinics", self.clinic.id)
