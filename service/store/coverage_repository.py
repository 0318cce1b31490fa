"""Repository of the coverage workflow tables; hands out plain dataclasses, never rows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Callable

import orjson
import sqlalchemy as sa
from sqlmodel import col, select

from .coverage_tables import CoverageExchangeRow, CoverageRequestRow, RemsFormSubmissionRow
from .sessions import StoreSession

Clock = Callable[[], dt.datetime]


@dataclass(frozen=True)
class StoredAuthRequest:
    id: str
    clinic_id: str
    patient_key: str
    coverage_key: str
    payer_key: str
    service: str
    certification_type: str
    status: str
    bundle_identifier: str
    replaces_id: str | None
    preauth_ref: str | None
    period_start: dt.date | None
    period_end: dt.date | None
    bundle: dict[str, Any]
    decision: dict[str, Any] | None
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclass(frozen=True)
class StoredExchange:
    seq: int
    request_id: str | None
    clinic_id: str
    patient_key: str
    operation: str
    url: str
    request: dict[str, Any]
    response: dict[str, Any] | None
    http_status: int | None
    outcome: str | None
    error: str | None
    created_at: dt.datetime


@dataclass(frozen=True)
class RemsSubmission:
    clinic_id: str
    session_key: str
    submitted_on: dt.date
    confirmation: str | None
    recorded_at: dt.datetime


def _auth(row: CoverageRequestRow) -> StoredAuthRequest:
    return StoredAuthRequest(
        row.id, row.clinic_id, row.patient_key, row.coverage_key, row.payer_key, row.service, row.certification_type,
        row.status, row.bundle_identifier, row.replaces_id, row.preauth_ref, row.period_start, row.period_end,
        orjson.loads(row.bundle), orjson.loads(row.decision) if row.decision else None, row.created_at, row.updated_at,
    )


def _exchange(row: CoverageExchangeRow) -> StoredExchange:
    return StoredExchange(
        int(row.seq or 0), row.request_id, row.clinic_id, row.patient_key, row.operation, row.url,
        orjson.loads(row.request_json), orjson.loads(row.response_json) if row.response_json else None,
        row.http_status, row.outcome, row.error, row.created_at,
    )


class CoverageRepository:
    def __init__(self, session: StoreSession, clock: Clock) -> None:
        self._session = session
        self._clock = clock

    # ---------------------------------------------------------------- requests
    def add_request(
        self, *, id: str, clinic_id: str, patient_key: str, coverage_key: str, payer_key: str, service: str,
        certification_type: str, bundle_identifier: str, bundle: dict, replaces_id: str | None = None, status: str = "draft",
    ) -> StoredAuthRequest:
        now = self._clock()
        row = CoverageRequestRow(
            id=id, clinic_id=clinic_id, patient_key=patient_key, coverage_key=coverage_key, payer_key=payer_key,
            service=service, certification_type=certification_type, status=status, bundle_identifier=bundle_identifier,
            replaces_id=replaces_id, bundle=orjson.dumps(bundle), created_at=now, updated_at=now,
        )
        self._session.add(row)
        self._session.flush()
        return _auth(row)

    def get_request(self, request_id: str) -> StoredAuthRequest | None:
        row = self._session.get(CoverageRequestRow, request_id)
        return _auth(row) if row is not None else None

    def update_request(
        self, request_id: str, *, status: str, decision: dict | None = None, preauth_ref: str | None = None,
        period_start: dt.date | None = None, period_end: dt.date | None = None, bundle: dict | None = None,
    ) -> StoredAuthRequest:
        row = self._session.get(CoverageRequestRow, request_id)
        if row is None:
            raise KeyError(request_id)
        row.status = status
        if decision is not None:
            row.decision = orjson.dumps(decision).decode()
        if preauth_ref is not None:
            row.preauth_ref = preauth_ref
        if period_start is not None:
            row.period_start = period_start
        if period_end is not None:
            row.period_end = period_end
        if bundle is not None:
            row.bundle = orjson.dumps(bundle)
        row.updated_at = self._clock()
        self._session.add(row)
        self._session.flush()
        return _auth(row)

    def list_requests(
        self, clinic_id: str, patient_key: str | None = None, statuses: list[str] | None = None, limit: int = 500
    ) -> list[StoredAuthRequest]:
        query = select(CoverageRequestRow).where(CoverageRequestRow.clinic_id == clinic_id)
        if patient_key is not None:
            query = query.where(CoverageRequestRow.patient_key == patient_key)
        if statuses:
            query = query.where(col(CoverageRequestRow.status).in_(statuses))
        query = query.order_by(col(CoverageRequestRow.created_at), col(CoverageRequestRow.id)).limit(limit)
        return [_auth(r) for r in self._session.exec(query)]

    # ---------------------------------------------------------------- exchanges
    def log_exchange(
        self, *, clinic_id: str, patient_key: str, operation: str, url: str, request: dict, response: dict | None,
        http_status: int | None, outcome: str | None = None, error: str | None = None, request_id: str | None = None,
    ) -> StoredExchange:
        row = CoverageExchangeRow(
            request_id=request_id, clinic_id=clinic_id, patient_key=patient_key, operation=operation, url=url,
            request_json=orjson.dumps(request), response_json=orjson.dumps(response) if response is not None else None,
            http_status=http_status, outcome=outcome, error=error, created_at=self._clock(),
        )
        self._session.add(row)
        self._session.flush()
        return _exchange(row)

    def exchanges(self, *, request_id: str | None = None, clinic_id: str | None = None, patient_key: str | None = None,
                  operation: str | None = None) -> list[StoredExchange]:
        query = select(CoverageExchangeRow)
        if request_id is not None:
            query = query.where(CoverageExchangeRow.request_id == request_id)
        if clinic_id is not None:
            query = query.where(CoverageExchangeRow.clinic_id == clinic_id)
        if patient_key is not None:
            query = query.where(CoverageExchangeRow.patient_key == patient_key)
        if operation is not None:
            query = query.where(CoverageExchangeRow.operation == operation)
        return [_exchange(r) for r in self._session.exec(query.order_by(col(CoverageExchangeRow.seq)))]

    # ---------------------------------------------------------------- REMS forms
    def mark_rems_submitted(self, clinic_id: str, session_key: str, submitted_on: dt.date, confirmation: str | None) -> RemsSubmission:
        row = self._session.get(RemsFormSubmissionRow, (clinic_id, session_key))
        if row is None:
            row = RemsFormSubmissionRow(clinic_id=clinic_id, session_key=session_key, submitted_on=submitted_on,
                                        confirmation=confirmation, recorded_at=self._clock())
        else:
            row.submitted_on, row.confirmation, row.recorded_at = submitted_on, confirmation, self._clock()
        self._session.add(row)
        self._session.flush()
        return RemsSubmission(row.clinic_id, row.session_key, row.submitted_on, row.confirmation, row.recorded_at)

    def rems_submissions(self, clinic_id: str) -> dict[str, RemsSubmission]:
        rows = self._session.exec(select(RemsFormSubmissionRow).where(RemsFormSubmissionRow.clinic_id == clinic_id))
        return {r.session_key: RemsSubmission(r.clinic_id, r.session_key, r.submitted_on, r.confirmation, r.recorded_at) for r in rows}


__all__ = ["CoverageRepository", "RemsSubmission", "StoredAuthRequest", "StoredExchange", "sa"]
