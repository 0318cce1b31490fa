"""Repositories over the store's tables. They speak plain dataclasses and dicts/bytes; no
table row leaves this package."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable, Sequence

import orjson
import sqlalchemy as sa
from sqlmodel import Session, col, delete, select

from .canonical import canonical_json, content_hash
from .fhir_index import date_span, patient_id_of, search_tokens
from .tables import (
    FhirResourceHistoryRow,
    FhirResourceRow,
    FhirSearchTokenRow,
    IdempotencyKeyRow,
    RecordRow,
    RecordVersionRow,
)

Clock = Callable[[], dt.datetime]


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class StoredRecord:
    """One version of a domain record as stored (data is the canonical validated JSON)."""

    kind: str
    clinic_id: str
    key: str
    patient_key: str | None
    data: dict
    version: int
    content_hash: str
    created_at: dt.datetime
    updated_at: dt.datetime


def _record(row: RecordRow) -> StoredRecord:
    return StoredRecord(
        kind=row.kind,
        clinic_id=row.clinic_id,
        key=row.key,
        patient_key=row.patient_key,
        data=orjson.loads(row.data),
        version=row.version,
        content_hash=row.content_hash,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


class RecordRepository:
    """Domain records by (kind, clinic, key), with every version kept in `record_version`."""

    def __init__(self, session: Session, clock: Clock) -> None:
        self._session = session
        self._clock = clock

    def get(self, kind: str, clinic_id: str, key: str) -> StoredRecord | None:
        row = self._session.get(RecordRow, (kind, clinic_id, key))
        return _record(row) if row else None

    def exists(self, kind: str, clinic_id: str, key: str) -> bool:
        return self._session.get(RecordRow, (kind, clinic_id, key)) is not None

    def save(self, kind: str, clinic_id: str, key: str, *, patient_key: str | None, data: dict) -> StoredRecord:
        """Insert version 1 or replace the current version with version + 1.

        The caller decides whether the content changed (compare `content_hash` first)."""
        now = self._clock()
        text = canonical_json(data).decode()
        digest = content_hash(text.encode())
        row = self._session.get(RecordRow, (kind, clinic_id, key))
        if row is None:
            row = RecordRow(
                kind=kind, clinic_id=clinic_id, key=key, patient_key=patient_key, data=text, version=1,
                content_hash=digest, created_at=now, updated_at=now,
            )
            self._session.add(row)
        else:
            row.version += 1
            row.data = text
            row.patient_key = patient_key
            row.content_hash = digest
            row.updated_at = now
        self._session.add(
            RecordVersionRow(
                kind=kind, clinic_id=clinic_id, key=key, version=row.version, data=text, content_hash=digest, recorded_at=now
            )
        )
        self._session.flush()
        return _record(row)

    def list(
        self,
        kind: str,
        *,
        clinic_id: str | None = None,
        patient_key: str | None = None,
        after: tuple[str, str] | None = None,
        limit: int = 50,
    ) -> list[StoredRecord]:
        """Records of a kind ordered by (clinic, key); `after` is the last (clinic, key) seen."""
        query = select(RecordRow).where(RecordRow.kind == kind)
        if clinic_id is not None:
            query = query.where(RecordRow.clinic_id == clinic_id)
        if patient_key is not None:
            query = query.where(RecordRow.patient_key == patient_key)
        if after is not None:
            query = query.where(sa.tuple_(col(RecordRow.clinic_id), col(RecordRow.key)) > sa.tuple_(*after))
        query = query.order_by(col(RecordRow.clinic_id), col(RecordRow.key)).limit(limit)
        return [_record(r) for r in self._session.exec(query)]

    def for_patient(self, clinic_id: str, patient_key: str, kinds: Sequence[str] | None = None) -> list[StoredRecord]:
        query = select(RecordRow).where(RecordRow.clinic_id == clinic_id, RecordRow.patient_key == patient_key)
        if kinds:
            query = query.where(col(RecordRow.kind).in_(list(kinds)))
        return [_record(r) for r in self._session.exec(query.order_by(col(RecordRow.kind), col(RecordRow.key)))]

    def versions(self, kind: str, clinic_id: str, key: str) -> list[tuple[int, dict, dt.datetime]]:
        """(version, data, recorded_at) of every version, oldest first."""
        query = (
            select(RecordVersionRow)
            .where(RecordVersionRow.kind == kind, RecordVersionRow.clinic_id == clinic_id, RecordVersionRow.key == key)
            .order_by(col(RecordVersionRow.version))
        )
        return [(r.version, orjson.loads(r.data), r.recorded_at) for r in self._session.exec(query)]

    def count(self) -> int:
        return self._session.exec(select(sa.func.count()).select_from(RecordRow)).one()


# --------------------------------------------------------------------------- FHIR resources


@dataclass(frozen=True)
class ResourceWrite:
    """What writing (or deleting) one resource did."""

    resource_type: str
    id: str
    version_id: int
    changed: bool
    deleted: bool
    patient_id: str | None
    clinic_id: str | None
    last_updated: dt.datetime


@dataclass(frozen=True)
class StoredResource:
    resource_type: str
    id: str
    version_id: int
    last_updated: dt.datetime
    json: bytes | None
    """Canonical JSON with meta.versionId/lastUpdated; None for a deletion tombstone."""
    deleted: bool = False
    patient_id: str | None = None
    clinic_id: str | None = None


def format_instant(moment: dt.datetime) -> str:
    """FHIR instant in UTC with milliseconds, e.g. 2026-03-02T14:00:00.123+00:00."""
    return moment.astimezone(dt.timezone.utc).isoformat(timespec="milliseconds")


def _without_version_meta(resource: dict) -> dict:
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    body = {k: v for k, v in resource.items() if k != "meta"}
    if meta:
        body["meta"] = meta
    return body


def _stored(row: FhirResourceRow) -> StoredResource:
    return StoredResource(
        row.resource_type, row.id, row.version_id, row.last_updated, row.json_bytes, False, row.patient_id, row.clinic_id
    )


class FhirResourceRepository:
    """Current FHIR resources with their search index; earlier versions go to history."""

    def __init__(self, session: Session, clock: Clock) -> None:
        self._session = session
        self._clock = clock

    def save(
        self, resource: dict, *, clinic_id: str | None = None, source: tuple[str, str, str] | None = None
    ) -> ResourceWrite:
        """Write a resource; a no-op (changed=False) when its content equals the stored one
        (meta.versionId and meta.lastUpdated are ignored and set here)."""
        resource_type, resource_id = resource["resourceType"], resource["id"]
        content = _without_version_meta(resource)
        digest = content_hash(content)
        row = self._session.get(FhirResourceRow, (resource_type, resource_id))
        patient_id = patient_id_of(resource)
        if row is not None and row.content_hash == digest:
            if source is not None and (row.source_kind, row.source_clinic_id, row.source_key) != source:
                row.source_kind, row.source_clinic_id, row.source_key = source
            return ResourceWrite(
                resource_type, resource_id, row.version_id, False, False, row.patient_id, row.clinic_id, row.last_updated
            )
        now = self._clock()
        if row is not None:
            version_id = row.version_id + 1
            self._session.add(
                FhirResourceHistoryRow(
                    resource_type=resource_type, id=resource_id, version_id=row.version_id,
                    last_updated=row.last_updated, json_bytes=row.json_bytes, deleted=False,
                )
            )
        else:
            version_id = self._last_history_version(resource_type, resource_id) + 1
        meta = dict(content.get("meta") or {})
        meta["versionId"] = str(version_id)
        meta["lastUpdated"] = format_instant(now)
        body = canonical_json({**content, "meta": meta})
        start, end = date_span(resource)
        status = resource.get("status") if isinstance(resource.get("status"), str) else None
        values = dict(
            version_id=version_id, last_updated=now, json_bytes=body, content_hash=digest, patient_id=patient_id,
            clinic_id=clinic_id, status=status, date_start=start, date_end=end,
            source_kind=source[0] if source else None, source_clinic_id=source[1] if source else None,
            source_key=source[2] if source else None,
        )
        if row is None:
            row = FhirResourceRow(resource_type=resource_type, id=resource_id, **values)
            self._session.add(row)
        else:
            for name, value in values.items():
                setattr(row, name, value)
        self._replace_tokens(resource_type, resource_id, search_tokens(resource))
        self._session.flush()
        return ResourceWrite(resource_type, resource_id, version_id, True, False, patient_id, clinic_id, now)

    def delete(self, resource_type: str, resource_id: str) -> ResourceWrite | None:
        """Delete the current version: it moves to history, followed by a tombstone version."""
        row = self._session.get(FhirResourceRow, (resource_type, resource_id))
        if row is None:
            return None
        now = self._clock()
        self._session.add(
            FhirResourceHistoryRow(
                resource_type=resource_type, id=resource_id, version_id=row.version_id,
                last_updated=row.last_updated, json_bytes=row.json_bytes, deleted=False,
            )
        )
        self._session.add(
            FhirResourceHistoryRow(
                resource_type=resource_type, id=resource_id, version_id=row.version_id + 1,
                last_updated=now, json_bytes=None, deleted=True,
            )
        )
        write = ResourceWrite(resource_type, resource_id, row.version_id + 1, True, True, row.patient_id, row.clinic_id, now)
        self._replace_tokens(resource_type, resource_id, set())
        self._session.delete(row)
        self._session.flush()
        return write

    def _last_history_version(self, resource_type: str, resource_id: str) -> int:
        query = select(sa.func.max(FhirResourceHistoryRow.version_id)).where(
            FhirResourceHistoryRow.resource_type == resource_type, FhirResourceHistoryRow.id == resource_id
        )
        return self._session.exec(query).one() or 0

    def _replace_tokens(self, resource_type: str, resource_id: str, tokens: set[tuple[str, str, str]]) -> None:
        self._session.exec(
            delete(FhirSearchTokenRow).where(
                col(FhirSearchTokenRow.resource_type) == resource_type, col(FhirSearchTokenRow.resource_id) == resource_id
            )
        )
        for param, system, value in sorted(tokens):
            self._session.add(
                FhirSearchTokenRow(resource_type=resource_type, resource_id=resource_id, param=param, system=system, value=value)
            )

    def read(self, resource_type: str, resource_id: str) -> StoredResource | None:
        row = self._session.get(FhirResourceRow, (resource_type, resource_id))
        return _stored(row) if row else None

    def read_version(self, resource_type: str, resource_id: str, version_id: int) -> StoredResource | None:
        row = self._session.get(FhirResourceRow, (resource_type, resource_id))
        if row is not None and row.version_id == version_id:
            return _stored(row)
        old = self._session.get(FhirResourceHistoryRow, (resource_type, resource_id, version_id))
        if old is None:
            return None
        return StoredResource(resource_type, resource_id, old.version_id, old.last_updated, old.json_bytes, old.deleted)

    def history(self, resource_type: str, resource_id: str) -> list[StoredResource]:
        """Every version, newest first."""
        query = (
            select(FhirResourceHistoryRow)
            .where(FhirResourceHistoryRow.resource_type == resource_type, FhirResourceHistoryRow.id == resource_id)
            .order_by(col(FhirResourceHistoryRow.version_id).desc())
        )
        older = [
            StoredResource(resource_type, resource_id, r.version_id, r.last_updated, r.json_bytes, r.deleted)
            for r in self._session.exec(query)
        ]
        current = self.read(resource_type, resource_id)
        return ([current] if current else []) + older

    def by_source(self, kind: str, clinic_id: str, key: str) -> list[StoredResource]:
        query = (
            select(FhirResourceRow)
            .where(
                FhirResourceRow.source_kind == kind,
                FhirResourceRow.source_clinic_id == clinic_id,
                FhirResourceRow.source_key == key,
            )
            .order_by(col(FhirResourceRow.resource_type), col(FhirResourceRow.id))
        )
        return [_stored(r) for r in self._session.exec(query)]

    def for_patient(self, patient_id: str) -> list[StoredResource]:
        query = (
            select(FhirResourceRow)
            .where(FhirResourceRow.patient_id == patient_id)
            .order_by(col(FhirResourceRow.resource_type), col(FhirResourceRow.date_start), col(FhirResourceRow.id))
        )
        return [_stored(r) for r in self._session.exec(query)]

    def tokens(self, resource_type: str, resource_id: str) -> set[tuple[str, str, str]]:
        query = select(FhirSearchTokenRow).where(
            FhirSearchTokenRow.resource_type == resource_type, FhirSearchTokenRow.resource_id == resource_id
        )
        return {(t.param, t.system, t.value) for t in self._session.exec(query)}

    def count(self) -> int:
        return self._session.exec(select(sa.func.count()).select_from(FhirResourceRow)).one()


# --------------------------------------------------------------------------- idempotency


@dataclass(frozen=True)
class StoredResponse:
    request_hash: str
    status: str
    body: bytes


class IdempotencyRepository:
    """Responses of requests sent with an `Idempotency-Key`, per (key, scope)."""

    def __init__(self, session: Session, clock: Clock) -> None:
        self._session = session
        self._clock = clock

    def get(self, key: str, scope: str) -> StoredResponse | None:
        row = self._session.get(IdempotencyKeyRow, (key, scope))
        return StoredResponse(row.request_hash, row.status, row.body) if row else None

    def save(self, key: str, scope: str, *, request_hash: str, status: str, body: bytes) -> None:
        self._session.add(
            IdempotencyKeyRow(key=key, scope=scope, request_hash=request_hash, status=status, body=body, created_at=self._clock())
        )
        self._session.flush()
