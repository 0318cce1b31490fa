"""The audit trail: one FHIR R4 `AuditEvent` per access to patient data and per outbound
transmission, in its own table `audit_event` (migration 0006) - never in `fhir_resource`, so
audit events have no outbox rows and are never synced.

Each row keeps the AuditEvent JSON plus the columns it is searched by (recorded, outcome,
clinic, patient). An AuditEvent holds references only (resource `Type/id`, domain record keys,
the token's subject and client id, the network address): no names, identifiers or clinical
content. The JSON is built here from plain values (`AuditRecord`), not with fhir.resources: it
is a fixed, small shape and the audit path must not fail on model validation.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import Field, SQLModel

from .repository import insert_rows
from .tables import KEY, UTCDateTime

SOURCE_NAME = "ketamine-fhir-service"
REST_TYPE = {"system": "http://terminology.hl7.org/CodeSystem/audit-event-type", "code": "rest",
             "display": "Restful Operation"}
EXPORT_TYPE = {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110106", "display": "Export"}
INTERACTION_SYSTEM = "http://hl7.org/fhir/restful-interaction"
OUTCOME_TEXT = {"0": "success", "4": "minor failure (request refused or invalid)", "8": "serious failure", "12": "major failure"}


class AuditEventRow(SQLModel, table=True):
    """One AuditEvent (see module docstring)."""

    __tablename__ = "audit_event"
    __table_args__ = (
        sa.Index("ix_audit_event_recorded", "recorded"),
        sa.Index("ix_audit_event_patient", "patient_id", "recorded"),
        sa.Index("ix_audit_event_clinic", "clinic_id", "recorded"),
    )

    id: str = Field(primary_key=True, max_length=64)
    recorded: dt.datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    action: str = Field(max_length=1)
    outcome: str = Field(max_length=2)
    subtype: str = Field(max_length=64)
    agent: str | None = Field(default=None, max_length=255)
    clinic_id: str | None = Field(default=None, max_length=KEY)
    patient_id: str | None = Field(default=None, max_length=KEY)
    json_bytes: bytes = Field(sa_column=sa.Column("json", sa.LargeBinary(), nullable=False))


@dataclass
class AuditRecord:
    """What happened, in plain values (turned into an AuditEvent by `to_fhir`)."""

    action: str
    """C R U D E."""
    outcome: str
    """'0' success, '4' minor failure (4xx), '8' serious failure (5xx / transmission failed)."""
    subtype: str
    """A restful-interaction code (read, search-type, create, ...) or 'transmit'."""
    agent_subject: str | None = None
    agent_client: str | None = None
    agent_issuer: str | None = None
    address: str | None = None
    clinic_id: str | None = None
    patient_ids: list[str] = field(default_factory=list)
    entities: list[str] = field(default_factory=list)
    """FHIR references `Type/id` (or `Type/id/_history/v`)."""
    records: list[str] = field(default_factory=list)
    """Domain record references `<kind>/<clinic>/<key>` (or a route template for lists)."""
    outbound_to: str | None = None
    """For transmissions: the receiving system's name (a sync target or payer key)."""
    recorded: dt.datetime | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))


def _instant(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def to_fhir(record: AuditRecord, recorded: dt.datetime) -> dict[str, Any]:
    """The FHIR R4 AuditEvent of `record` (references only)."""
    agent: dict[str, Any] = {
        "type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/extra-security-role-type",
                              "code": "humanuser" if record.outbound_to is None else "dataprocessor"}]},
        "requestor": record.outbound_to is None,
    }
    if record.agent_subject:
        who: dict[str, Any] = {"identifier": {"value": record.agent_subject}}
        if record.agent_issuer:
            who["identifier"]["system"] = record.agent_issuer
        agent["who"] = who
    else:
        agent["who"] = {"display": SOURCE_NAME if record.outbound_to else "unauthenticated caller"}
    if record.agent_client:
        agent["altId"] = record.agent_client
    if record.address:
        agent["network"] = {"address": record.address, "type": "2"}
    agents = [agent]
    entities: list[dict[str, Any]] = []
    for patient in dict.fromkeys(record.patient_ids):
        entities.append({
            "what": {"reference": f"Patient/{patient}"} if "/" not in patient else {"identifier": {
                "system": "urn:ketamine-fhir-service:patient-record", "value": patient}},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "1", "display": "Person"},
            "role": {"system": "http://terminology.hl7.org/CodeSystem/object-role", "code": "1", "display": "Patient"},
        })
    for reference in dict.fromkeys(record.entities):
        entities.append({
            "what": {"reference": reference},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object"},
        })
    for key in dict.fromkeys(record.records):
        entities.append({
            "what": {"identifier": {"system": "urn:ketamine-fhir-service:record", "value": key}},
            "type": {"system": "http://terminology.hl7.org/CodeSystem/audit-entity-type", "code": "2", "display": "System Object"},
        })
    if record.outbound_to:
        agents.append({
            "type": {"coding": [{"system": "http://dicom.nema.org/resources/ontology/DCM", "code": "110152",
                                  "display": "Destination Role ID"}]},
            "who": {"display": record.outbound_to},
            "requestor": False,
        })
    event: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": record.id,
        "type": EXPORT_TYPE if record.outbound_to else REST_TYPE,
        "subtype": [{"system": INTERACTION_SYSTEM, "code": record.subtype}] if record.outbound_to is None
        else [{"system": "urn:ketamine-fhir-service:audit-subtype", "code": record.subtype}],
        "action": record.action,
        "recorded": _instant(recorded),
        "outcome": record.outcome,
        "outcomeDesc": OUTCOME_TEXT.get(record.outcome, ""),
        "agent": agents,
        "source": {
            "site": record.clinic_id or "all-clinics",
            "observer": {"display": SOURCE_NAME},
            "type": [{"system": "http://terminology.hl7.org/CodeSystem/security-source-type", "code": "4",
                      "display": "Application Server"}],
        },
    }
    if entities:
        event["entity"] = entities
    return event


@dataclass(frozen=True)
class AuditQuery:
    patient: str | None = None
    clinic_id: str | None = None
    outcome: tuple[str, ...] = ()
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    limit: int = 100
    after: tuple[dt.datetime, str] | None = None
    """Keyset: the (recorded, id) of the last event of the previous page (newest first)."""


_T = AuditEventRow.__table__  # type: ignore[attr-defined]


class AuditLog:
    """Appends and queries audit events, each call in its own short transaction (an audit
    event must survive the rollback of the request it describes)."""

    def __init__(self, engine: Engine, clock: Any = None) -> None:
        self.engine = engine
        self.clock = clock or (lambda: dt.datetime.now(dt.timezone.utc))

    def append(self, records: Sequence[AuditRecord]) -> None:
        if not records:
            return
        rows = []
        for record in records:
            moment = record.recorded or self.clock()
            event = to_fhir(record, moment)
            rows.append({
                "id": record.id, "recorded": moment, "action": record.action, "outcome": record.outcome,
                "subtype": record.subtype[:64], "agent": (record.agent_subject or "")[:255] or None,
                "clinic_id": record.clinic_id, "patient_id": (record.patient_ids[0][:KEY] if record.patient_ids else None),
                "json": orjson.dumps(event),
            })
        with self.engine.begin() as connection:
            insert_rows(connection, [(_T, rows)])  # PostgreSQL: one statement for the whole batch

    def _where(self, query: AuditQuery) -> list[Any]:
        c = _T.c
        where: list[Any] = []
        if query.patient is not None:
            where.append(c.patient_id == query.patient)
        if query.clinic_id is not None:
            where.append(c.clinic_id == query.clinic_id)
        if query.outcome:
            where.append(c.outcome.in_(list(query.outcome)))
        if query.since is not None:
            where.append(c.recorded >= sa.literal(query.since, UTCDateTime()))
        if query.until is not None:
            where.append(c.recorded <= sa.literal(query.until, UTCDateTime()))
        return where

    def search(self, query: AuditQuery) -> tuple[list[tuple[dt.datetime, str, bytes]], bool]:
        """A page of (recorded, id, json), newest first, and whether more follow."""
        c = _T.c
        where = self._where(query)
        if query.after is not None:
            stamp, last_id = query.after
            where.append(sa.tuple_(c.recorded, c.id) < sa.tuple_(sa.literal(stamp, UTCDateTime()), last_id))
        statement = (
            sa.select(c.recorded, c.id, c.json).where(*where).order_by(c.recorded.desc(), c.id.desc()).limit(query.limit + 1)
        )
        with self.engine.connect() as connection:
            rows = [(_utc(r[0]), r[1], r[2]) for r in connection.execute(statement)]
        return rows[: query.limit], len(rows) > query.limit

    def count(self, query: AuditQuery) -> int:
        with self.engine.connect() as connection:
            return int(connection.execute(sa.select(sa.func.count()).select_from(_T).where(*self._where(query))).scalar_one())

    def read(self, event_id: str) -> tuple[str | None, bytes] | None:
        """(clinic_id, json) of one event."""
        with self.engine.connect() as connection:
            row = connection.execute(sa.select(_T.c.clinic_id, _T.c.json).where(_T.c.id == event_id)).first()
        return (row[0], row[1]) if row is not None else None

    def export(self, query: AuditQuery, batch: int = 1000) -> Iterator[bytes]:
        """Every matching event's JSON, oldest first, in batches (NDJSON lines without newline)."""
        c = _T.c
        last: tuple[dt.datetime, str] | None = None
        while True:
            where = self._where(query)
            if last is not None:
                where.append(sa.tuple_(c.recorded, c.id) > sa.tuple_(sa.literal(last[0], UTCDateTime()), last[1]))
            statement = sa.select(c.recorded, c.id, c.json).where(*where).order_by(c.recorded, c.id).limit(batch)
            with self.engine.connect() as connection:
                rows = list(connection.execute(statement))
            if not rows:
                return
            for row in rows:
                yield bytes(row[2])
            last = (_utc(rows[-1][0]), rows[-1][1])


def _utc(value: Any) -> dt.datetime:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)
