"""Inbound pull: import what an EHR already knows about a patient — Patient, Coverage,
Condition and medication history (MedicationRequest, and MedicationStatement where the EHR has
it) — so screening starts from it.

Search `Patient?identifier=system|value`, then `Coverage?beneficiary=`, `Condition?patient=`,
`MedicationRequest?patient=`, `MedicationStatement?patient=`, following `next` links. Each
resource gets our own id (UUIDv5 over target, type and the EHR's id, so a repeated pull
updates instead of duplicating, and an EHR id can never overwrite one of ours), references
among the pulled resources are rewritten to our ids, and everything is stored in one
transaction with source kind `ehr-pull`. The source target's delivery rows are recorded as
sent (with its ids), so nothing is echoed back to the EHR it came from.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

from ..store.sync_repository import PulledResource, SyncStore
from . import bundles
from .client import FhirTargetClient
from .errors import PermanentError
from .targets import TargetConfig

log = logging.getLogger(__name__)

PULL_NAMESPACE = uuid.UUID("6f1d8a52-2c4e-4b8e-9d0e-7a3f5b1c9e24")
SOURCE_KIND = "ehr-pull"
RELATED_SEARCHES = (
    ("Coverage", "beneficiary"),
    ("Condition", "patient"),
    ("MedicationRequest", "patient"),
    ("MedicationStatement", "patient"),
)


class PullError(ValueError):
    """The pull cannot be done (bad identifier, no such patient on the EHR)."""


@dataclass
class PullReport:
    target: str
    patients: list[str] = field(default_factory=list)
    """Our ids of the pulled Patients."""
    counts: dict[str, int] = field(default_factory=dict)
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped_searches: list[str] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        return {
            "target": self.target, "patients": [f"Patient/{p}" for p in self.patients], "counts": self.counts,
            "created": self.created, "updated": self.updated, "unchanged": self.unchanged,
            "skipped_searches": self.skipped_searches,
        }


def our_id(target: str, resource_type: str, their_id: str) -> str:
    return str(uuid.uuid5(PULL_NAMESPACE, f"{target}|{resource_type}|{their_id}"))


def parse_identifier(text: str) -> tuple[str, str]:
    system, sep, value = text.partition("|")
    if not sep or not system or not value:
        raise PullError("identifier must be system|value")
    return system, value


def pull_patient(
    store: SyncStore, target: TargetConfig, identifier: str, *, clinic_id: str | None = None,
    client: FhirTargetClient | None = None,
) -> PullReport:
    parse_identifier(identifier)
    own_client = client is None
    client = client or FhirTargetClient(target)
    report = PullReport(target.name)
    try:
        patients = list(client.search("Patient", {"identifier": identifier}))
        if not patients:
            raise PullError(f"no Patient with that identifier on target {target.name}")
        pulled: list[dict[str, Any]] = list(patients)
        for patient in patients:
            for resource_type, param in RELATED_SEARCHES:
                try:
                    pulled += list(client.search(resource_type, {param: f"Patient/{patient['id']}"}))
                except PermanentError as error:  # the EHR does not have (or search) this type
                    report.skipped_searches.append(f"{resource_type} (HTTP {error.status})")
    finally:
        if own_client:
            client.close()
    mapping: dict[tuple[str, str], str] = {}
    unique: dict[tuple[str, str], dict[str, Any]] = {}
    for resource in pulled:
        key = (resource["resourceType"], str(resource["id"]))
        unique[key] = resource
        mapping[key] = our_id(target.name, key[0], key[1])
    prepared = []
    for key, resource in unique.items():
        body = bundles.rewrite_references(resource, lambda k: f"{k[0]}/{mapping[k]}" if k in mapping else None)
        body["id"] = mapping[key]
        meta = {k: v for k, v in (body.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
        if meta:
            body["meta"] = meta
        else:
            body.pop("meta", None)
        prepared.append(PulledResource(body, key[1]))
        report.counts[key[0]] = report.counts.get(key[0], 0) + 1
    # patients first, so a resource's patient is stored before it
    prepared.sort(key=lambda p: (p.resource["resourceType"] != "Patient", p.resource["resourceType"], p.resource["id"]))
    first_patient = mapping[("Patient", str(patients[0]["id"]))]
    result = store.save_pulled(target.name, prepared, clinic_id=clinic_id, source_key=first_patient)
    report.patients = [mapping[("Patient", str(p["id"]))] for p in patients]
    report.created, report.updated, report.unchanged = result.created, result.updated, result.unchanged
    log.info("pulled from %s: %s", target.name, report.counts)
    return report
