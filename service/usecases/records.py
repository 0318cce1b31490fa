"""Use cases on domain records: put (create or update), get, list, preview.

`put_record` owns one unit of work: validate -> check references and codes -> upsert the
record (a new version only when the content changed) -> map to FHIR -> write the resources
(a new version only when a resource changed) -> one outbox row per changed resource ->
commit. Anything failing on the way rolls all of it back.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Callable, Mapping

import orjson
from pydantic import ValidationError

from ..domain.common import DomainRecord
from ..domain.organization import Clinic
from ..domain.records import RECORD_KINDS, RecordKind
from ..domain.outcomes import DEFAULT_RULES, OutcomeRules, ScorePoint, trajectory
from ..domain.questionnaires import QuestionnaireAnswers
from ..domain.scoring import Instrument
from ..fhir import MappingContext, map_record
from ..fhir.outcomes import outcome_observations
from ..store import UnitOfWork, canonical_json, content_hash
from ..store.repository import ResourceInput, StoredRecord
from ..store.unit_of_work import ConcurrentWriteError
from .codes import check_codes
from .errors import (
    Conflict,
    FieldError,
    IdempotencyConflict,
    InvalidRecord,
    MappingUnavailable,
    MissingReference,
    NotFound,
    UnknownCodeError,
    UnknownKind,
    invalid_record,
)


class WriteStatus(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


class PutMode(StrEnum):
    UPSERT = "upsert"
    """PUT by business key: create or update."""
    CREATE = "create"
    """POST: create; an existing record with the same content is returned, different content is a conflict."""


@dataclass(frozen=True)
class ResourceRef:
    resource_type: str
    id: str
    version_id: int

    def as_dict(self) -> dict[str, Any]:
        return {"resourceType": self.resource_type, "id": self.id, "versionId": str(self.version_id)}


@dataclass(frozen=True)
class PutResult:
    """The outcome of writing one record."""

    kind: str
    record: dict
    """The stored record (canonical validated JSON)."""
    version: int
    status: WriteStatus
    fhir: list[ResourceRef]
    replayed: bool = False
    """True when this is the stored response of an earlier request with the same Idempotency-Key."""

    def document(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "status": self.status.value,
            "version": self.version,
            "record": self.record,
            "fhir": [r.as_dict() for r in self.fhir],
        }

    @classmethod
    def from_document(cls, doc: dict[str, Any], *, replayed: bool = False) -> "PutResult":
        refs = [ResourceRef(r["resourceType"], r["id"], int(r["versionId"])) for r in doc["fhir"]]
        return cls(doc["kind"], doc["record"], doc["version"], WriteStatus(doc["status"]), refs, replayed)


@dataclass(frozen=True)
class RecordView:
    """A stored record with its current FHIR resources."""

    kind: str
    record: dict
    version: int
    created_at: str
    updated_at: str
    fhir: list[ResourceRef] = field(default_factory=list)

    def document(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": self.version,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "record": self.record,
            "fhir": [r.as_dict() for r in self.fhir],
        }


@dataclass(frozen=True)
class RecordPage:
    items: list[RecordView]
    next_cursor: str | None

    def document(self) -> dict[str, Any]:
        return {"items": [i.document() for i in self.items], "next_cursor": self.next_cursor}


# --------------------------------------------------------------------------- helpers


def record_kind(kind: str) -> RecordKind:
    try:
        return RECORD_KINDS[kind]
    except KeyError:
        known = ", ".join(RECORD_KINDS)
        raise UnknownKind(f"unknown record kind {kind!r} (known: {known})") from None


def validate_record(kind: str, payload: Any) -> DomainRecord:
    """The payload as the kind's domain model; InvalidRecord naming each offending field."""
    spec = record_kind(kind)
    if not isinstance(payload, dict):
        raise InvalidRecord("the record must be a JSON object", [FieldError("", "expected a JSON object")])
    try:
        return spec.model.model_validate(payload)
    except ValidationError as error:
        raise invalid_record(error, spec.model) from None


RecordKey = tuple[str, str, str]
"""(kind, clinic_id, key) of a stored record."""


def _clinic_of(uow: UnitOfWork, record: DomainRecord, found: Mapping[RecordKey, StoredRecord] | None = None) -> Clinic:
    if isinstance(record, Clinic):
        return record
    key = ("clinics", record.clinic_id, record.clinic_id)
    stored = found.get(key) if found is not None else None
    if stored is None:
        stored = uow.records.get(*key)
    if stored is None:
        raise MissingReference(
            f"clinic {record.clinic_id!r} does not exist",
            [FieldError("clinic_id", f"no clinic with id {record.clinic_id!r}")],
        )
    return Clinic.model_validate(stored.data)


def reference_keys(kind: str, record: DomainRecord) -> list[RecordKey]:
    """The records `check_references` looks up: the clinic and every reference field's target."""
    spec = record_kind(kind)
    keys: list[RecordKey] = [] if kind == "clinics" else [("clinics", record.clinic_id, record.clinic_id)]
    for name, target in spec.references.items():
        value = getattr(record, name, None)
        if value is not None:
            keys.append((target, record.clinic_id, value))
    return keys


def check_references(
    uow: UnitOfWork, kind: str, record: DomainRecord, found: Mapping[RecordKey, StoredRecord] | None = None
) -> None:
    """Every reference field must name an existing record of its target kind in the same
    clinic (and, for patient records, of the same patient). `found` holds the records of
    `reference_keys` already read in this unit of work (else they are read here, in one query)."""
    spec = record_kind(kind)
    if found is None:
        found = uow.records.get_many(reference_keys(kind, record))
    errors: list[FieldError] = []
    if kind != "clinics" and ("clinics", record.clinic_id, record.clinic_id) not in found:
        errors.append(FieldError("clinic_id", f"no clinic with id {record.clinic_id!r}"))
    else:
        patient_id = getattr(record, "patient_id", None)
        for name, target in spec.references.items():
            value = getattr(record, name, None)
            if value is None:
                continue
            stored = found.get((target, record.clinic_id, value))
            if stored is None:
                errors.append(FieldError(name, f"no {target} record {value!r} in clinic {record.clinic_id!r}"))
            elif (
                patient_id is not None
                and name != "patient_id"
                and stored.patient_key is not None
                and stored.patient_key != patient_id
            ):
                errors.append(FieldError(name, f"{target} record {value!r} belongs to another patient"))
    if errors:
        raise MissingReference("; ".join(f"{e.field}: {e.message}" for e in errors), errors)


def _check_codes(kind: str, record: DomainRecord) -> None:
    errors = check_codes(kind, record)
    if errors:
        raise UnknownCodeError("; ".join(f"{e.field}: {e.message}" for e in errors), errors)


def _map(record: DomainRecord, clinic: Clinic, recorded_at: dt.datetime | None = None) -> list[dict]:
    from ..terminology import TerminologyError

    try:
        return map_record(record, MappingContext(clinic=clinic, recorded_at=recorded_at))
    except (TypeError, ImportError) as error:
        if isinstance(error, TypeError) and "no FHIR mapping" not in str(error):
            raise
        raise MappingUnavailable(f"no FHIR mapping for {type(record).__name__} yet") from None
    except TerminologyError as error:
        raise UnknownCodeError(str(error), [FieldError("", str(error))]) from None


def _refs(stored: list) -> list[ResourceRef]:
    return [ResourceRef(s.resource_type, s.id, s.version_id) for s in stored]


def idempotency_scope(kind: str, mode: PutMode, clinic_id: str) -> str:
    verb = "POST" if mode is PutMode.CREATE else "PUT"
    return f"{clinic_id}|{verb} /api/v1/{kind}"


# --------------------------------------------------------------------------- put

OUTCOME_INSTRUMENTS = frozenset({Instrument.PHQ9, Instrument.MADRS})


def put_record(
    uow: UnitOfWork,
    kind: str,
    payload: Any,
    idempotency_key: str | None = None,
    *,
    mode: PutMode = PutMode.UPSERT,
    key: str | None = None,
    outcome_rules: OutcomeRules = DEFAULT_RULES,
) -> PutResult:
    """Validate, check and store one record with its FHIR resources and outbox rows.

    `key` (the business key from a URL) must equal the payload's `id` when both are given;
    it fills in a missing `id`. Retrying is safe: identical content is a no-op (status
    unchanged), and with an `idempotency_key` a repeat returns the first response verbatim.
    """
    spec = record_kind(kind)
    if key is not None and isinstance(payload, dict):
        if payload.get("id") is None:
            payload = {"id": key, **payload}
        elif payload["id"] != key:
            raise InvalidRecord(
                "the id in the body differs from the key in the URL",
                [FieldError("id", f"must equal the key in the URL ({key!r})")],
            )
    record = validate_record(kind, payload)
    data = record.model_dump(mode="json")
    # what a repeat of this Idempotency-Key must match (only needed with one)
    request_hash = content_hash({"kind": kind, "mode": mode.value, "record": data}) if idempotency_key is not None else ""
    scope = idempotency_scope(kind, mode, record.clinic_id)
    try:
        return _put_once(uow, spec, record, data, request_hash, idempotency_key, scope, mode, outcome_rules, presume=True)
    except ConcurrentWriteError:
        # another request wrote the same key (or idempotency key) first, or a new record's
        # resources were wrongly presumed new: redo against what is stored, reading it all
        return _put_once(uow, spec, record, data, request_hash, idempotency_key, scope, mode, outcome_rules, presume=False)


def _put_once(
    uow: UnitOfWork,
    spec: RecordKind,
    record: DomainRecord,
    data: dict,
    request_hash: str,
    idempotency_key: str | None,
    scope: str,
    mode: PutMode,
    outcome_rules: OutcomeRules = DEFAULT_RULES,
    *,
    presume: bool = False,
) -> PutResult:
    """One attempt at put_record's write. `presume`: the referenced records may come from the
    record cache, with the record itself presumed new (RecordRepository.read_for_write), and a
    record not stored yet has no resources either, so its resources' state is not read
    (FhirResourceRepository.save_many's `presume_new`). A wrong presumption fails the commit
    as a concurrent write would, and put_record retries without presuming."""
    kind = spec.name
    with uow:
        if idempotency_key is not None:
            earlier = uow.idempotency.get(idempotency_key, scope)
            if earlier is not None:
                if earlier.request_hash != request_hash:
                    raise IdempotencyConflict(
                        "this Idempotency-Key was used before with a different request body",
                        [FieldError("Idempotency-Key", "already used for a different request")],
                    )
                return PutResult.from_document(orjson.loads(earlier.body), replayed=True)
        own = (kind, record.clinic_id, record.id)
        if presume:  # the references from the record cache when it holds them all (checked at commit)
            found, _ = uow.records.read_for_write(reference_keys(kind, record), own)
        else:
            found = uow.records.get_many([*reference_keys(kind, record), own])  # one query for all of them
        check_references(uow, kind, record, found)
        _check_codes(kind, record)
        existing = found.get(own)
        digest = content_hash(canonical_json(data))
        if existing is not None and existing.content_hash == digest:
            result = PutResult(
                kind, existing.data, existing.version, WriteStatus.UNCHANGED,
                _refs(uow.resources.by_source(kind, record.clinic_id, record.id)),
            )
        elif existing is not None and mode is PutMode.CREATE:
            raise Conflict(
                f"{kind} record {record.id!r} already exists with different content; use PUT to update it",
                [FieldError("id", "a record with this id already exists")],
            )
        else:
            result = _write(uow, kind, record, data, existing, outcome_rules, found, presume_new=presume and existing is None)
        if idempotency_key is not None:
            uow.idempotency.save(
                idempotency_key, scope, request_hash=request_hash, status=result.status.value,
                body=canonical_json(result.document()),
            )
        uow.commit()
    return result


def _write(
    uow: UnitOfWork, kind: str, record: DomainRecord, data: dict, existing: StoredRecord | None,
    outcome_rules: OutcomeRules = DEFAULT_RULES, found: Mapping[RecordKey, StoredRecord] | None = None,
    *, presume_new: bool = False,
) -> PutResult:
    """Store the record and its resources: `existing` is its stored version (None if new),
    `found` the records read for the reference check (the clinic among them), `presume_new`
    as for save_many."""
    clinic = _clinic_of(uow, record, found)
    resources = _map(record, clinic, uow.now)

    def save_record() -> StoredRecord:
        return uow.records.save(
            kind, record.clinic_id, record.id, patient_key=getattr(record, "patient_id", None), data=data,
            current=existing,
        )

    source = (kind, record.clinic_id, record.id)
    items = [ResourceInput(resource, record.clinic_id, source) for resource in resources]
    stored = None
    if isinstance(record, QuestionnaireAnswers) and record.instrument in OUTCOME_INSTRUMENTS:
        stored = save_record()  # the outcome trajectory reads the patient's scores, this one included
        items += [
            ResourceInput(resource, record.clinic_id, outcome_source)
            for resource, outcome_source in _outcome_resources(uow, record, clinic, outcome_rules)
        ]
    # one batch: every resource (a new version only when its content changed), then the
    # resources this record produced before but no longer does (e.g. a vital sign removed)
    batch = uow.resources.save_many(items, prune_source=source, presume_new=presume_new)
    if stored is None:
        # queued after the batch's read of the resources' state, so that every INSERT of the
        # write goes out together at commit (service/store/write_behind.py)
        stored = save_record()
    refs = [
        ResourceRef(write.resource_type, write.id, write.version_id)
        for write, item in zip(batch.writes, items)
        if item.source == source
    ]
    for write in batch.writes:
        if write.changed:
            uow.outbox.append(write)
    for gone in batch.deleted:
        uow.outbox.append(gone)
    status = WriteStatus.CREATED if existing is None else WriteStatus.UPDATED
    return PutResult(kind, stored.data, stored.version, status, refs)


def _outcome_resources(
    uow: UnitOfWork, record: QuestionnaireAnswers, clinic: Clinic, rules: OutcomeRules
) -> list[tuple[dict, tuple]]:
    """Outcome-status Observations for every follow-up of this patient's instrument, recomputed
    from all stored scores (the record being written is already stored). Each belongs to
    (is sourced from) its follow-up questionnaire record."""
    answers = [
        QuestionnaireAnswers.model_validate(r.data)
        for r in uow.records.for_patient(record.clinic_id, record.patient_id, ["questionnaire-responses"])
    ]
    points = [
        ScorePoint(a.authored_at, a.result().total, a.id)
        for a in answers
        if a.instrument is record.instrument and a.result().total is not None
    ]
    track = trajectory(record.instrument, points, rules)
    ctx = MappingContext(clinic=clinic, recorded_at=uow.now)
    resources = outcome_observations(record.instrument, record.patient_id, track, rules, ctx)
    return [
        (resource, ("questionnaire-responses", record.clinic_id, point.point.record_id))
        for resource, point in zip(resources, track[1:])
    ]


# --------------------------------------------------------------------------- read


def _view(uow: UnitOfWork, stored: StoredRecord, with_fhir: bool = True) -> RecordView:
    refs = _refs(uow.resources.by_source(stored.kind, stored.clinic_id, stored.key)) if with_fhir else []
    return RecordView(
        stored.kind, stored.data, stored.version, stored.created_at.isoformat(), stored.updated_at.isoformat(), refs
    )


def _clinic_scope(kind: str, key: str | None, clinic_id: str | None) -> str:
    if clinic_id is None and kind == "clinics" and key is not None:
        return key
    if clinic_id is None:
        raise InvalidRecord("clinic_id is required", [FieldError("clinic_id", "required for this record kind")])
    return clinic_id


def get_record(uow: UnitOfWork, kind: str, key: str, clinic_id: str | None = None) -> RecordView:
    """The current version of one record with its FHIR resources; NotFound if absent."""
    record_kind(kind)
    clinic = _clinic_scope(kind, key, clinic_id)
    with uow:
        stored = uow.records.get(kind, clinic, key)
        if stored is None:
            raise NotFound(f"no {kind} record {key!r} in clinic {clinic!r}")
        return _view(uow, stored)


def _encode_cursor(clinic_id: str, key: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([clinic_id, key])).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        value = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if isinstance(value, list) and len(value) == 2 and all(isinstance(v, str) for v in value):
            return value[0], value[1]
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        pass
    raise InvalidRecord("invalid cursor", [FieldError("cursor", "not a cursor returned by this service")])


def list_records(
    uow: UnitOfWork,
    kind: str,
    *,
    clinic_id: str | None = None,
    patient_id: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> RecordPage:
    """A page of records ordered by (clinic, key); `next_cursor` fetches the next page."""
    spec = record_kind(kind)
    if kind != "clinics" and clinic_id is None:
        raise InvalidRecord("clinic_id is required", [FieldError("clinic_id", "required for this record kind")])
    if patient_id is not None and not spec.patient_scoped and kind != "patients":
        raise InvalidRecord(
            f"{kind} records do not belong to a patient", [FieldError("patient_id", "not a filter of this kind")]
        )
    after = _decode_cursor(cursor) if cursor else None
    with uow:
        if kind == "patients" and patient_id is not None:
            one = uow.records.get(kind, clinic_id or "", patient_id)
            rows = [one] if one is not None and (after is None or (one.clinic_id, one.key) > after) else []
        else:
            rows = uow.records.list(kind, clinic_id=clinic_id, patient_key=patient_id, after=after, limit=limit + 1)
        items = [_view(uow, r, with_fhir=False) for r in rows[:limit]]
    next_cursor = _encode_cursor(rows[limit - 1].clinic_id, rows[limit - 1].key) if len(rows) > limit else None
    return RecordPage(items, next_cursor)


def record_history(uow: UnitOfWork, kind: str, key: str, clinic_id: str | None = None) -> list[dict[str, Any]]:
    """Every stored version of a record, oldest first (the audit trail)."""
    record_kind(kind)
    clinic = _clinic_scope(kind, key, clinic_id)
    with uow:
        versions = uow.records.versions(kind, clinic, key)
    if not versions:
        raise NotFound(f"no {kind} record {key!r} in clinic {clinic!r}")
    return [{"version": v, "recorded_at": at.isoformat(), "record": data} for v, data, at in versions]


# --------------------------------------------------------------------------- preview


def preview_fhir(
    kind: str, payload: Any, clinic: Clinic | None = None, uow_factory: Callable[[], UnitOfWork] | None = None
) -> list[dict]:
    """The FHIR resources a payload would produce, without storing anything.

    The clinic (for identifier systems) is the record itself for kind clinics, else `clinic`,
    else it is read from the store through `uow_factory`."""
    record = validate_record(kind, payload)
    _check_codes(kind, record)
    if clinic is None:
        if isinstance(record, Clinic):
            clinic = record
        elif uow_factory is not None:
            with uow_factory() as uow:
                clinic = _clinic_of(uow, record)
        else:
            raise MissingReference("the clinic is needed to map this record", [FieldError("clinic_id", "unknown clinic")])
    return _map(record, clinic)
