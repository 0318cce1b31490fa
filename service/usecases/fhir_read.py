"""FHIR read, vread and history (instance and type level), answered with stored bytes."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence
from urllib.parse import urlencode

from ..store import SqlUnitOfWork, UnitOfWork
from ..store.repository import format_instant
from .fhir_bundle import Bundle, BundleEntry
from .fhir_errors import FhirError, invalid, not_found
from .fhir_search import DEFAULT_COUNT, MAX_COUNT, decode_cursor, encode_cursor, parse_date_value
from .fhir_types import READ_TYPES, valid_id

if TYPE_CHECKING:
    from .bootstrap import Services


@dataclass(frozen=True)
class ResourceVersion:
    """One stored version as served: bytes plus what the ETag/Last-Modified headers need."""

    resource_type: str
    id: str
    version_id: int
    last_updated: dt.datetime
    json: bytes


def read_uow(services: "Services") -> UnitOfWork:
    """A read-only unit of work (no write lock on SQLite) for reads and searches."""
    return SqlUnitOfWork(services.engine, services.clock, write=False)


def check_type(resource_type: str) -> None:
    if resource_type not in READ_TYPES:
        raise FhirError.of(404, f"resource type {resource_type[:80]!r} is not supported by this server", "not-supported")


def check_id(resource_id: str) -> None:
    if not valid_id(resource_id):
        raise invalid(f"{resource_id[:80]!r} is not a valid resource id ([A-Za-z0-9-.]{{1,64}})")


def gone(resource_type: str, resource_id: str) -> FhirError:
    return FhirError.of(410, f"{resource_type}/{resource_id} has been deleted", "deleted")


def read_in(uow: UnitOfWork, resource_type: str, resource_id: str) -> ResourceVersion:
    """The current version inside an open unit of work: 404 unknown, 410 deleted."""
    check_type(resource_type)
    check_id(resource_id)
    stored = uow.resources.read(resource_type, resource_id)
    if stored is None or stored.json is None:
        if uow.search.was_deleted(resource_type, resource_id):
            raise gone(resource_type, resource_id)
        raise not_found(resource_type, resource_id)
    return ResourceVersion(resource_type, resource_id, stored.version_id, stored.last_updated, stored.json)


def read(uow: UnitOfWork, resource_type: str, resource_id: str) -> ResourceVersion:
    with uow:
        return read_in(uow, resource_type, resource_id)


def vread_in(uow: UnitOfWork, resource_type: str, resource_id: str, version: str) -> ResourceVersion:
    check_type(resource_type)
    check_id(resource_id)
    if not version.isdigit() or len(version) > 9:
        raise invalid(f"version {version[:20]!r} is not a version id of this server (a positive integer)")
    stored = uow.resources.read_version(resource_type, resource_id, int(version))
    if stored is None:
        raise FhirError.of(404, f"{resource_type}/{resource_id} has no version {version}", "not-found")
    if stored.deleted or stored.json is None:
        raise FhirError.of(410, f"version {version} of {resource_type}/{resource_id} is a deletion", "deleted")
    return ResourceVersion(resource_type, resource_id, stored.version_id, stored.last_updated, stored.json)


def vread(uow: UnitOfWork, resource_type: str, resource_id: str, version: str) -> ResourceVersion:
    with uow:
        return vread_in(uow, resource_type, resource_id, version)


def _history_entry(base: str, resource_type: str, resource_id: str, version_id: int, last_updated: dt.datetime,
                   json: bytes | None, deleted: bool) -> BundleEntry:
    if deleted:
        request = {"method": "DELETE", "url": f"{resource_type}/{resource_id}"}
        response = {"status": "204 No Content"}
    elif version_id == 1:
        request = {"method": "POST", "url": resource_type}
        response = {"status": "201 Created"}
    else:
        request = {"method": "PUT", "url": f"{resource_type}/{resource_id}"}
        response = {"status": "200 OK"}
    response = {**response, "etag": f'W/"{version_id}"', "lastModified": format_instant(last_updated)}
    return BundleEntry(None if deleted else json, f"{base}/{resource_type}/{resource_id}", None, request, response)


def _history_params(params: Sequence[tuple[str, str]]) -> tuple[int, dt.datetime | None, list, list[tuple[str, str]]]:
    count, since, cursor, kept = DEFAULT_COUNT, None, None, []
    for key, value in params:
        if key == "_count":
            if not value.isdigit():
                raise invalid(f"_count must be a non-negative integer, not {value[:40]!r}")
            count = max(1, min(int(value), MAX_COUNT))
        elif key == "_since":
            match = parse_date_value(value, "_since")
            if match.prefix != "eq":
                raise invalid("_since takes an instant without a prefix")
            since = match.start
        elif key == "_cursor":
            direction, cursor = decode_cursor(value)
            if direction != "n" or len(cursor) != 3 or not isinstance(cursor[0], dt.datetime):
                raise invalid("_cursor is not a history cursor of this server")
            continue
        elif key in ("_format", "_pretty"):
            continue
        else:
            raise invalid(f"parameter {key[:60]!r} is not supported for history (use _count, _since)")
        kept.append((key, value))
    return count, since, cursor, kept


def instance_history(uow: UnitOfWork, resource_type: str, resource_id: str, params: Sequence[tuple[str, str]], *, base: str) -> Bundle:
    """Every version of one resource, newest first (deletions as DELETE entries)."""
    check_type(resource_type)
    check_id(resource_id)
    count, since, _cursor, kept = _history_params(params)
    with uow:
        versions = uow.resources.history(resource_type, resource_id)
    if not versions:
        raise not_found(resource_type, resource_id)
    if since is not None:
        versions = [v for v in versions if v.last_updated >= since]
    bundle = Bundle("history", total=len(versions))
    query = urlencode(kept)
    bundle.links.append(("self", f"{base}/{resource_type}/{resource_id}/_history" + (f"?{query}" if query else "")))
    for v in versions[:count]:
        bundle.entries.append(_history_entry(base, resource_type, resource_id, v.version_id, v.last_updated, v.json, v.deleted))
    return bundle


def type_history(uow: UnitOfWork, resource_type: str, params: Sequence[tuple[str, str]], *, base: str) -> Bundle:
    """Every version of every resource of a type, newest first, paged with next links."""
    check_type(resource_type)
    count, since, cursor, kept = _history_params(params)
    with uow:
        rows, more = uow.search.type_history(resource_type, limit=count, since=since, before_key=tuple(cursor) if cursor else None)
    bundle = Bundle("history")
    path = f"{base}/{resource_type}/_history"
    own = kept + ([("_cursor", encode_cursor("n", cursor))] if cursor else [])
    bundle.links.append(("self", path + (f"?{urlencode(own)}" if own else "")))
    if more and rows:
        last = rows[-1]
        bundle.links.append(("next", f"{path}?{urlencode(kept + [('_cursor', encode_cursor('n', [last.last_updated, last.id, last.version_id]))])}"))
    for r in rows:
        bundle.entries.append(_history_entry(base, r.resource_type, r.id, r.version_id, r.last_updated, r.json, r.deleted))
    return bundle
