"""Provenance (US Core Provenance) for the resources one record produced: who authored the
record, on behalf of which clinic, and when it was recorded."""

from __future__ import annotations

import datetime as dt

from ..domain.common import DomainRecord
from ..domain.records import PRACTITIONER_FIELDS, kind_of
from .context import MappingContext
from .elements import codeable, ref

PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
TIME_FIELDS = (
    "authored_at", "started_at", "taken_at", "occurred_at", "given_at",
    "screened_on", "assessed_on", "decided_on", "recorded_on", "start_date",
)


def _recorded(record: DomainRecord, ctx: MappingContext) -> str:
    if ctx.recorded_at is not None:
        return ctx.recorded_at.astimezone(dt.timezone.utc).isoformat()
    for name in TIME_FIELDS:
        value = getattr(record, name, None)
        if isinstance(value, dt.datetime):
            return value.isoformat()
        if isinstance(value, dt.date):
            return f"{value.isoformat()}T00:00:00Z"
    return "1970-01-01T00:00:00Z"  # reference data without a time of its own (clinic, location)


def provenance(record: DomainRecord, targets: list[dict], ctx: MappingContext) -> dict:
    author = next((getattr(record, f) for f in PRACTITIONER_FIELDS if getattr(record, f, None)), None)
    agent = {
        "type": codeable({"system": PARTICIPANT_TYPE, "code": "author", "display": "Author"}),
        "who": ctx.practitioner_ref(author) if author else ctx.organization_ref(),
    }
    if author:
        agent["onBehalfOf"] = ctx.organization_ref()
    kind = kind_of(record).name
    return {
        "resourceType": "Provenance",
        "id": ctx.id("Provenance", kind, record.id),
        "meta": {"profile": ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-provenance"]},
        "target": [ref(r) for r in targets],
        "recorded": _recorded(record, ctx),
        "agent": [agent],
    }
