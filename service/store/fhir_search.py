"""FHIR search as SQL over the indexed columns of `fhir_resource` and the `fhir_search_token`
table. The FHIR REST use cases (service/usecases/fhir_search.py) parse search parameters into a
`SearchSpec`; this module turns one into ONE SELECT (plus an optional COUNT):

    SELECT ... FROM fhir_resource r
    WHERE r.resource_type = :type
      AND r.patient_id IN (:patients)                          -- ix_fhir_resource_patient
      AND r.date_... (prefix semantics on date_start/date_end) -- same index / ix_..._type_date(_end)
      AND EXISTS (SELECT 1 FROM fhir_search_token t            -- token PK probe per row, or
                  WHERE t.resource_type = r.resource_type      -- ix_fhir_search_token_type_value
                    AND t.resource_id = r.id AND t.param = 'code'
                    AND (t.system, t.value) match)
      AND (sort keys, id) > (:cursor)                          -- keyset paging, never OFFSET
    ORDER BY sort keys, id LIMIT :count + 1

Dates follow FHIR's range semantics: every resource covers [date_start, date_end] (a NULL
start is open to the past, a NULL end open to the future; rows with neither never match), every
search value covers [start, end] of its precision.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, Sequence

import sqlalchemy as sa
from sqlmodel import col, select

from .sessions import StoreSession
from .tables import FhirResourceHistoryRow, FhirResourceRow, FhirSearchTokenRow, OutboxRow, UTCDateTime

UTC = dt.timezone.utc
EARLIEST = dt.datetime(1, 1, 2, tzinfo=UTC)
"""Stands in for a missing date_start when sorting by date (sorts first ascending)."""


@dataclass(frozen=True)
class TokenMatch:
    """One alternative of a token search value: system None = any system; value None = any
    value of the system (`system|`)."""

    system: str | None
    value: str | None


@dataclass(frozen=True)
class TokenFilter:
    """Rows that have (or, negated, do not have) a token of `param` matching any alternative."""

    param: str
    matches: tuple[TokenMatch, ...]
    negate: bool = False


@dataclass(frozen=True)
class DateMatch:
    """One alternative of a date search value: prefix (eq, ne, lt, le, gt, ge, sa, eb, ap) and
    the range [start, end] the value covers at its precision."""

    prefix: str
    start: dt.datetime
    end: dt.datetime


@dataclass(frozen=True)
class DateFilter:
    column: str
    """'date' (date_start/date_end) or 'last_updated'."""
    matches: tuple[DateMatch, ...]


@dataclass(frozen=True)
class SortKey:
    name: str
    """'_id', '_lastUpdated' or 'date'."""
    descending: bool = False


@dataclass(frozen=True)
class SearchSpec:
    """A FHIR search on one resource type, as filters AND-ed together (each an OR-list)."""

    resource_type: str
    ids: tuple[tuple[str, ...], ...] = ()
    patient_ids: tuple[tuple[str, ...], ...] = ()
    statuses: tuple[tuple[str, ...], ...] = ()
    excluded_statuses: tuple[tuple[str, ...], ...] = ()
    """`status:not`: rows whose status is none of these (a row without a status matches)."""
    tokens: tuple[TokenFilter, ...] = ()
    dates: tuple[DateFilter, ...] = ()
    clinic_id: str | None = None
    impossible: bool = False
    """A filter that can match nothing (e.g. subject=Group/x): no query is run."""
    sort: tuple[SortKey, ...] = ()
    compartment_patient: str | None = None
    """Access confinement (a patient-context token): only rows of this patient or of no patient."""


@dataclass(frozen=True)
class FoundResource:
    resource_type: str
    id: str
    version_id: int
    last_updated: dt.datetime
    json: bytes
    patient_id: str | None
    clinic_id: str | None
    sort_key: tuple[Any, ...] = field(default=())
    """Values of the sort keys then the id (for cursors)."""


@dataclass(frozen=True)
class HistoryEntry:
    resource_type: str
    id: str
    version_id: int
    last_updated: dt.datetime
    json: bytes | None
    deleted: bool


R = FhirResourceRow


def _sort_columns(spec_sort: Sequence[SortKey]) -> list[tuple[Any, bool]]:
    columns: list[tuple[Any, bool]] = []
    for key in spec_sort:
        if key.name == "_lastUpdated":
            columns.append((col(R.last_updated), key.descending))
        elif key.name == "date":
            columns.append((sa.func.coalesce(col(R.date_start), sa.literal(EARLIEST, UTCDateTime())), key.descending))
        elif key.name == "_id":
            columns.append((col(R.id), key.descending))
        else:  # pragma: no cover - the use case only passes the names above
            raise ValueError(f"unknown sort key {key.name}")
    if not any(key.name == "_id" for key in spec_sort):
        columns.append((col(R.id), columns[0][1] if columns else False))
    return columns


def _keyset(columns: list[tuple[Any, bool]], values: Sequence[Any], *, backwards: bool) -> Any:
    """Rows strictly after (or, backwards, before) `values` in the order of `columns`:
    (k1 > v1) OR (k1 = v1 AND k2 > v2) OR ... (with < for descending keys)."""
    alternatives = []
    for index, (column, descending) in enumerate(columns):
        after = descending == backwards  # ascending & forwards -> '>'
        value = sa.literal(values[index], UTCDateTime()) if isinstance(values[index], dt.datetime) else values[index]
        strict = column > value if after else column < value
        equal = [c == (sa.literal(v, UTCDateTime()) if isinstance(v, dt.datetime) else v) for (c, _), v in zip(columns[:index], values[:index])]
        alternatives.append(sa.and_(*equal, strict))
    return sa.or_(*alternatives)


def _date_condition(column: str, match: DateMatch) -> Any:
    if column == "last_updated":
        start = end = col(R.last_updated)
        has_start = has_end = sa.true()
        open_start = open_end = sa.false()
    else:
        start, end = col(R.date_start), col(R.date_end)
        has_start, has_end = start.is_not(None), end.is_not(None)
        open_start, open_end = start.is_(None), end.is_(None)
    lo = sa.literal(match.start, UTCDateTime())
    hi = sa.literal(match.end, UTCDateTime())

    def start_lt(x: Any) -> Any:
        return sa.or_(open_start, start < x)

    def start_gt(x: Any) -> Any:
        return sa.and_(has_start, start > x)

    def start_ge(x: Any) -> Any:
        return sa.and_(has_start, start >= x)

    def start_le(x: Any) -> Any:
        return sa.or_(open_start, start <= x)

    def end_gt(x: Any) -> Any:
        return sa.or_(open_end, end > x)

    def end_ge(x: Any) -> Any:
        return sa.or_(open_end, end >= x)

    def end_lt(x: Any) -> Any:
        return sa.and_(has_end, end < x)

    def end_le(x: Any) -> Any:
        return sa.and_(has_end, end <= x)

    contained = sa.and_(start_ge(lo), end_le(hi))
    has_date = sa.or_(has_start, has_end)
    condition = {
        "eq": contained,
        "ne": sa.not_(contained),
        "gt": end_gt(hi),
        "lt": start_lt(lo),
        "ge": sa.or_(end_gt(hi), contained),
        "le": sa.or_(start_lt(lo), contained),
        "sa": start_gt(hi),
        "eb": end_lt(lo),
        "ap": sa.and_(start_le(hi), end_ge(lo)),
    }[match.prefix]
    return sa.and_(has_date, condition)


def _token_condition(resource_type: str, token: TokenFilter, patients: tuple[str, ...] | None = None) -> Any:
    """EXISTS a matching token; with the search's `patients` (the rows' patient_id is one of
    them), the token's copy of patient_id is constrained too, so PostgreSQL can read the
    patient's tokens from ix_fhir_search_token_patient (same result: a token's patient_id is
    its resource's)."""
    T = FhirSearchTokenRow
    alternatives = []
    for match in token.matches:
        parts = []
        if match.system is not None:
            parts.append(col(T.system) == match.system)
        if match.value is not None:
            parts.append(col(T.value) == match.value)
        alternatives.append(sa.and_(*parts) if parts else sa.true())
    exists = (
        select(sa.literal(1))
        .where(
            col(T.resource_type) == resource_type,
            col(T.resource_id) == col(R.id),
            col(T.param) == token.param,
            sa.or_(*alternatives),
            *([col(T.patient_id).in_(list(patients))] if patients else []),
        )
        .exists()
    )
    return sa.not_(exists) if token.negate else exists


def _where(spec: SearchSpec) -> list[Any]:
    conditions: list[Any] = [col(R.resource_type) == spec.resource_type]
    if spec.impossible:
        conditions.append(sa.false())
    if spec.clinic_id is not None:
        conditions.append(col(R.clinic_id) == spec.clinic_id)
    if spec.compartment_patient is not None:
        conditions.append(sa.or_(col(R.patient_id).is_(None), col(R.patient_id) == spec.compartment_patient))
    for ids in spec.ids:
        conditions.append(col(R.id).in_(list(ids)))
    for patients in spec.patient_ids:
        conditions.append(col(R.patient_id).in_(list(patients)))
    for statuses in spec.statuses:
        conditions.append(col(R.status).in_(list(statuses)))
    for statuses in spec.excluded_statuses:
        conditions.append(sa.or_(col(R.status).is_(None), col(R.status).not_in(list(statuses))))
    for date in spec.dates:
        conditions.append(sa.or_(*[_date_condition(date.column, m) for m in date.matches]))
    patients = spec.patient_ids[0] if len(spec.patient_ids) == 1 else None
    for token in spec.tokens:
        conditions.append(_token_condition(spec.resource_type, token, patients))
    return conditions


def _found(row: Any, n_keys: int) -> FoundResource:
    values = tuple(row[9 : 9 + n_keys])
    return FoundResource(row[0], row[1], row[2], row[3], row[4], row[5], row[6], values)


_COLUMNS = (
    col(R.resource_type), col(R.id), col(R.version_id), col(R.last_updated), col(R.json_bytes), col(R.patient_id),
    col(R.clinic_id), col(R.date_start), col(R.date_end),
)


class FhirSearchRepository:
    """Search, type history and compartment reads over the FHIR tables (read-only)."""

    def __init__(self, session: StoreSession) -> None:
        self._session = session

    def statement(self, spec: SearchSpec, *, limit: int, after: Sequence[Any] | None = None, before: Sequence[Any] | None = None) -> Any:
        """The SELECT of one page: `after` = the last sort key of the previous page, `before`
        = the first sort key of the next page (for `previous` links; rows come back reversed)."""
        columns = _sort_columns(spec.sort)
        conditions = _where(spec)
        if after is not None:
            conditions.append(_keyset(columns, after, backwards=False))
        if before is not None:
            conditions.append(_keyset(columns, before, backwards=True))
        reverse = before is not None
        order = [(c.desc() if d != reverse else c.asc()) for c, d in columns]
        return sa.select(*_COLUMNS, *[c for c, _ in columns]).where(*conditions).order_by(*order).limit(limit)

    def search(
        self, spec: SearchSpec, *, limit: int, after: Sequence[Any] | None = None, before: Sequence[Any] | None = None
    ) -> tuple[list[FoundResource], bool]:
        """One page of matches in sort order and whether more rows lie beyond it (in the
        direction of travel)."""
        self._session.flush()
        if spec.impossible or limit <= 0:
            return [], False
        n_keys = len(_sort_columns(spec.sort))
        rows = [_found(r, n_keys) for r in self._session.execute(self.statement(spec, limit=limit + 1, after=after, before=before))]
        more = len(rows) > limit
        rows = rows[:limit]
        if before is not None:
            rows.reverse()
        return rows, more

    def count(self, spec: SearchSpec) -> int:
        self._session.flush()
        if spec.impossible:
            return 0
        return int(self._session.execute(sa.select(sa.func.count()).select_from(R).where(*_where(spec))).scalar_one())

    def read_many(self, refs: Sequence[tuple[str, str]]) -> list[FoundResource]:
        """Current versions of the (type, id) pairs that exist, in the order given."""
        self._session.flush()
        wanted = list(dict.fromkeys(refs))
        if not wanted:
            return []
        found: dict[tuple[str, str], FoundResource] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            query = sa.select(*_COLUMNS).where(sa.tuple_(col(R.resource_type), col(R.id)).in_(chunk))
            for row in self._session.execute(query):
                item = _found(row, 0)
                found[(item.resource_type, item.id)] = item
        return [found[r] for r in wanted if r in found]

    def compartment(self, patient_id: str, *, limit: int, after: tuple[str, str] | None = None) -> tuple[list[FoundResource], bool]:
        """A page of the resources that belong to a patient (the Patient itself included),
        ordered by (resource_type, id)."""
        self._session.flush()
        query = sa.select(*_COLUMNS, col(R.resource_type), col(R.id)).where(col(R.patient_id) == patient_id)
        if after is not None:
            query = query.where(sa.tuple_(col(R.resource_type), col(R.id)) > sa.tuple_(*after))
        query = query.order_by(col(R.resource_type), col(R.id)).limit(limit + 1)
        rows = [_found(r, 2) for r in self._session.execute(query)]
        return rows[:limit], len(rows) > limit

    def source_kind(self, resource_type: str, resource_id: str) -> str | None:
        """The kind of record that produced the current version ('fhir' for REST writes)."""
        return self._session.execute(
            sa.select(col(R.source_kind)).where(col(R.resource_type) == resource_type, col(R.id) == resource_id)
        ).scalar_one_or_none()

    def was_deleted(self, resource_type: str, resource_id: str) -> bool:
        """True when the resource's newest version is a deletion tombstone."""
        H = FhirResourceHistoryRow
        newest = self._session.execute(
            sa.select(col(H.deleted))
            .where(col(H.resource_type) == resource_type, col(H.id) == resource_id)
            .order_by(col(H.version_id).desc())
            .limit(1)
        ).scalar_one_or_none()
        return bool(newest)

    def owners(self, refs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], tuple[str | None, str | None]]:
        """(clinic_id, patient_id) of each (type, id) that exists or existed: from the current row,
        else (deleted resources) from the newest outbox row of the resource."""
        self._session.flush()
        wanted = list(dict.fromkeys(refs))
        found: dict[tuple[str, str], tuple[str | None, str | None]] = {}
        O = OutboxRow
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            query = sa.select(col(R.resource_type), col(R.id), col(R.clinic_id), col(R.patient_id)).where(
                sa.tuple_(col(R.resource_type), col(R.id)).in_(chunk)
            )
            for row in self._session.execute(query):
                found[(row[0], row[1])] = (row[2], row[3])
            missing = [k for k in chunk if k not in found]
            if missing:
                query = (
                    sa.select(col(O.resource_type), col(O.resource_id), col(O.clinic_id), col(O.patient_id))
                    .where(sa.tuple_(col(O.resource_type), col(O.resource_id)).in_(missing))
                    .order_by(col(O.seq))
                )
                for row in self._session.execute(query):
                    found[(row[0], row[1])] = (row[2], row[3])  # the newest row wins
        return found

    def type_history(
        self, resource_type: str, *, limit: int, since: dt.datetime | None = None, before_key: tuple | None = None,
        owner_clinic: str | None = None, owner_patient: str | None = None,
    ) -> tuple[list[HistoryEntry], bool]:
        """Versions of every resource of a type, newest first (last_updated, id, version
        descending); `before_key` is the last (last_updated, id, version) of the previous page.
        `owner_clinic` / `owner_patient` (access confinement) keep the resources whose outbox
        rows name that clinic (and that patient, or no patient)."""
        self._session.flush()
        H = FhirResourceHistoryRow
        current = sa.select(
            col(R.resource_type).label("resource_type"), col(R.id).label("id"), col(R.version_id).label("version_id"),
            col(R.last_updated).label("last_updated"), col(R.json_bytes).label("json"), sa.literal(False).label("deleted"),
        ).where(col(R.resource_type) == resource_type)
        older = sa.select(
            col(H.resource_type).label("resource_type"), col(H.id).label("id"), col(H.version_id).label("version_id"),
            col(H.last_updated).label("last_updated"), col(H.json_bytes).label("json"), col(H.deleted).label("deleted"),
        ).where(col(H.resource_type) == resource_type)
        if since is not None:
            current = current.where(col(R.last_updated) >= since)
            older = older.where(col(H.last_updated) >= since)
        if owner_clinic is not None or owner_patient is not None:
            O = OutboxRow

            def owned(type_column: Any, id_column: Any) -> Any:
                conditions = [col(O.resource_type) == type_column, col(O.resource_id) == id_column]
                if owner_clinic is not None:
                    conditions.append(col(O.clinic_id) == owner_clinic)
                if owner_patient is not None:
                    conditions.append(sa.or_(col(O.patient_id).is_(None), col(O.patient_id) == owner_patient))
                return select(sa.literal(1)).where(*conditions).exists()

            current = current.where(owned(col(R.resource_type), col(R.id)))
            older = older.where(owned(col(H.resource_type), col(H.id)))
        union = sa.union_all(current, older).subquery()
        query = sa.select(union)
        if before_key is not None:
            stamp, rid, version = before_key
            query = query.where(
                sa.tuple_(union.c.last_updated, union.c.id, union.c.version_id)
                < sa.tuple_(sa.literal(stamp, UTCDateTime()), rid, version)
            )
        query = query.order_by(union.c.last_updated.desc(), union.c.id.desc(), union.c.version_id.desc()).limit(limit + 1)
        rows = list(self._session.execute(query))
        entries = [
            HistoryEntry(r.resource_type, r.id, r.version_id, _utc(r.last_updated), r.json, bool(r.deleted)) for r in rows[:limit]
        ]
        return entries, len(rows) > limit


def _utc(value: Any) -> dt.datetime:
    """Union columns lose the UTCDateTime result processing on SQLite (strings / naive)."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
