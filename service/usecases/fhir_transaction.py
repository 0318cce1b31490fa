"""FHIR `transaction` and `batch` Bundles (POST to the base URL).

transaction: ONE unit of work; entries run in FHIR's order (DELETE, POST, PUT, GET) whatever
their position; `urn:uuid:` fullUrls (and conditional references `Type?criteria`) in
references are replaced by the ids assigned; If-None-Exist / conditional PUT work inside. Any
failure rolls everything back and is reported as one OperationOutcome whose expressions name
the entry (`Bundle.entry[3].resource.subject`).

batch: every entry on its own (own unit of work); a failing entry gets its status and an
OperationOutcome in `response.outcome`, the others still happen.

The response Bundle (transaction-response / batch-response) lists the entries in request
order with `response.status`, `location`, `etag` and `lastModified`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

import orjson

from ..store import UnitOfWork
from ..store.repository import format_instant
from ..store.unit_of_work import ConcurrentWriteError
from .fhir_bundle import Bundle, BundleEntry
from .fhir_errors import FhirError, OutcomeIssue, invalid, operation_outcome
from .fhir_read import ResourceVersion, check_id, check_type, read_in, vread_in
from .fhir_search import parse_search, run_search
from .fhir_write import Deleted, Written, check_write_type, conditional_matches, create_in, delete_in, update_in

ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "PATCH": 2, "GET": 3, "HEAD": 3}
MAX_ENTRIES = 1000


@dataclass
class Request:
    index: int
    method: str
    resource_type: str
    resource_id: str | None
    version: str | None
    query: list[tuple[str, str]]
    conditional: str | None
    """The search criteria of a conditional PUT ('identifier=sys|val')."""
    full_url: str | None
    resource: dict | None
    if_none_exist: str | None
    if_match: str | None
    assigned_id: str | None = None
    existing: bool = False
    result: BundleEntry | None = field(default=None)

    @property
    def where(self) -> str:
        return f"Bundle.entry[{self.index}]"


def _status(code: int) -> str:
    return f"{code} {HTTPStatus(code).phrase}"


def _parse_url(url: str, base: str, where: str) -> tuple[str, str | None, str | None, list[tuple[str, str]], str]:
    """'Patient/1/_history/2?x=y' (or absolute under our base) -> (type, id, version, query, raw query)."""
    if url.startswith(base + "/"):
        url = url[len(base) + 1 :]
    elif "://" in url:
        raise invalid(f"request.url {url[:100]!r} is not on this server", f"{where}.request.url")
    parts = urlsplit(url)
    segments = [s for s in parts.path.strip("/").split("/") if s]
    if not segments:
        raise invalid("request.url must name a resource type", f"{where}.request.url")
    resource_type = segments[0]
    resource_id = version = None
    if len(segments) == 2:
        resource_id = segments[1]
    elif len(segments) == 4 and segments[2] == "_history":
        resource_id, version = segments[1], segments[3]
    elif len(segments) != 1:
        raise invalid(f"request.url {url[:100]!r} is not supported in a Bundle", f"{where}.request.url")
    return resource_type, resource_id, version, parse_qsl(parts.query, keep_blank_values=True), parts.query


def _requests(bundle: Any, base: str) -> tuple[str, list[Request]]:
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise invalid("POST to the base URL takes a Bundle of type transaction or batch", "Bundle")
    kind = bundle.get("type")
    if kind not in ("transaction", "batch"):
        raise invalid(f"Bundle.type must be transaction or batch, not {str(kind)[:40]!r}", "Bundle.type")
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise invalid("Bundle.entry must be a list", "Bundle.entry")
    if len(entries) > MAX_ENTRIES:
        raise invalid(f"at most {MAX_ENTRIES} entries per Bundle", "Bundle.entry")
    requests = []
    for index, entry in enumerate(entries):
        where = f"Bundle.entry[{index}]"
        request = entry.get("request") if isinstance(entry, dict) else None
        if not isinstance(request, dict) or not isinstance(request.get("method"), str) or not isinstance(request.get("url"), str):
            raise invalid("every entry needs request.method and request.url", f"{where}.request")
        method = request["method"].upper()
        if method not in ORDER:
            raise invalid(f"request.method {method[:20]!r} is not supported", f"{where}.request.method")
        if method == "PATCH":
            raise FhirError.of(405, "PATCH is not supported", "not-supported", [f"{where}.request.method"])
        resource_type, resource_id, version, query, raw_query = _parse_url(request["url"], base, where)
        resource = entry.get("resource")
        if method in ("POST", "PUT") and not isinstance(resource, dict):
            raise invalid(f"a {method} entry needs a resource", f"{where}.resource")
        full_url = entry.get("fullUrl") if isinstance(entry.get("fullUrl"), str) else None
        conditional = raw_query if method == "PUT" and resource_id is None else None
        if method == "PUT" and resource_id is None and not raw_query:
            raise invalid("PUT needs Type/id or Type?criteria", f"{where}.request.url")
        if method == "DELETE" and resource_id is None:
            raise FhirError.of(405, "conditional delete is not supported", "not-supported", [f"{where}.request.url"])
        if method == "POST" and (resource_id is not None or version is not None):
            raise invalid("POST entries take request.url = the resource type", f"{where}.request.url")
        requests.append(
            Request(
                index, method, resource_type, resource_id, version, query, conditional, full_url,
                dict(resource) if isinstance(resource, dict) else None,
                request.get("ifNoneExist") if isinstance(request.get("ifNoneExist"), str) else None,
                request.get("ifMatch") if isinstance(request.get("ifMatch"), str) else None,
            )
        )
    return kind, requests


def _rewrite(value: Any, mapping: dict[str, str], resolve: Callable[[str], str]) -> Any:
    """Replace `reference` strings that are fullUrls of this Bundle (or conditional
    references) by the assigned `Type/id`."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                if item in mapping:
                    item = mapping[item]
                elif "?" in item and not item.startswith(("http:", "https:", "urn:")):
                    item = resolve(item)
            else:
                item = _rewrite(item, mapping, resolve)
            out[key] = item
        return out
    if isinstance(value, list):
        return [_rewrite(v, mapping, resolve) for v in value]
    return value


def _written_entry(base: str, written: Written, prefer: str | None) -> BundleEntry:
    response = {
        "status": _status(written.status),
        "location": f"{written.resource_type}/{written.id}/_history/{written.version_id}",
        "etag": f'W/"{written.version_id}"',
        "lastModified": format_instant(written.last_updated),
    }
    resource = written.json if prefer == "representation" else None
    if prefer == "OperationOutcome":
        response["outcome"] = operation_outcome([OutcomeIssue("information", "informational", f"{written.resource_type}/{written.id} stored")])
    return BundleEntry(resource, f"{base}/{written.resource_type}/{written.id}", None, None, response)


def _read_entry(version: ResourceVersion) -> BundleEntry:
    response = {
        "status": "200 OK",
        "etag": f'W/"{version.version_id}"',
        "lastModified": format_instant(version.last_updated),
    }
    return BundleEntry(version.json, None, None, None, response)


def _run(uow: UnitOfWork, request: Request, *, base: str, clinic: str | None, prefer: str | None) -> BundleEntry:
    """One entry inside an open unit of work (after ids were assigned, for transactions)."""
    if request.method == "DELETE":
        assert request.resource_id is not None
        deleted: Deleted = delete_in(uow, request.resource_type, request.resource_id)
        response: dict[str, Any] = {"status": "204 No Content"}
        if deleted.version_id is not None:
            response["etag"] = f'W/"{deleted.version_id}"'
        return BundleEntry(None, None, None, None, response)
    if request.method == "POST":
        assert request.resource is not None
        if request.existing:
            return _written_entry(base, _existing(uow, request), prefer)
        written = create_in(
            uow, request.resource_type, request.resource, clinic_header=clinic,
            if_none_exist=None if request.assigned_id else request.if_none_exist, assigned_id=request.assigned_id,
        )
        return _written_entry(base, written, prefer)
    if request.method == "PUT":
        resource_id = request.resource_id or request.assigned_id
        assert resource_id is not None and request.resource is not None
        resource = request.resource
        if request.conditional is not None:
            resource = {**resource, "id": resource_id}
        written = update_in(uow, request.resource_type, resource_id, resource, clinic_header=clinic, if_match=request.if_match)
        return _written_entry(base, written, prefer)
    # GET / HEAD
    if request.resource_id is None:
        parsed = parse_search(request.resource_type, request.query, strict=False)
        return BundleEntry(run_search(uow, parsed, base=base).to_bytes(), None, None, None, {"status": "200 OK"})
    if request.version is not None:
        return _read_entry(vread_in(uow, request.resource_type, request.resource_id, request.version))
    return _read_entry(read_in(uow, request.resource_type, request.resource_id))


def _existing(uow: UnitOfWork, request: Request) -> Written:
    stored = uow.resources.read(request.resource_type, request.assigned_id or "")
    assert stored is not None and stored.json is not None
    return Written(request.resource_type, stored.id, stored.version_id, stored.last_updated, stored.json, False, False)


def _assign_ids(uow: UnitOfWork, requests: list[Request]) -> dict[str, str]:
    """Ids for POST (new uuid, or the If-None-Exist match) and conditional PUT entries, and
    fullUrl -> 'Type/id' for every entry that writes."""
    mapping: dict[str, str] = {}
    for request in requests:
        try:
            if request.method == "POST":
                check_write_type(request.resource_type)
                if request.if_none_exist:
                    matches = conditional_matches(uow, request.resource_type, request.if_none_exist)
                    if len(matches) > 1:
                        raise FhirError.of(412, f"ifNoneExist matches more than one {request.resource_type}", "multiple-matches")
                    if matches:
                        request.assigned_id, request.existing = matches[0], True
                request.assigned_id = request.assigned_id or str(uuid.uuid4())
            elif request.method == "PUT" and request.conditional is not None:
                check_write_type(request.resource_type)
                matches = conditional_matches(uow, request.resource_type, request.conditional, "conditional update")
                if len(matches) > 1:
                    raise FhirError.of(412, f"conditional update matches more than one {request.resource_type}", "multiple-matches")
                body_id = (request.resource or {}).get("id")
                request.assigned_id = matches[0] if matches else (body_id if isinstance(body_id, str) else str(uuid.uuid4()))
            elif request.method == "PUT":
                check_type(request.resource_type)
                check_id(request.resource_id or "")
                request.assigned_id = request.resource_id
        except FhirError as error:
            raise error.prefixed(f"{request.where}.request") from None
        if request.method in ("POST", "PUT") and request.full_url and request.assigned_id:
            mapping[request.full_url] = f"{request.resource_type}/{request.assigned_id}"
    return mapping


def transaction(uow: UnitOfWork, bundle: Any, *, base: str, clinic: str | None = None, prefer: str | None = None) -> Bundle:
    kind, requests = _requests(bundle, base)
    if kind == "batch":
        raise AssertionError("use batch() for batch Bundles")  # pragma: no cover
    _check_duplicates(requests)
    for attempt in (1, 2):
        try:
            return _transaction_once(uow, requests, base=base, clinic=clinic, prefer=prefer)
        except ConcurrentWriteError:
            if attempt == 2:
                raise FhirError.of(409, "a concurrent request changed the same resources; retry the transaction", "conflict") from None
            for request in requests:
                request.assigned_id, request.existing, request.result = None, False, None
    raise AssertionError("unreachable")  # pragma: no cover


def _check_duplicates(requests: list[Request]) -> None:
    seen: dict[str, int] = {}
    for request in requests:
        if request.method in ("PUT", "DELETE") and request.resource_id:
            key = f"{request.resource_type}/{request.resource_id}"
            if key in seen:
                raise invalid(f"{key} is changed by entries {seen[key]} and {request.index}", f"{request.where}.request.url")
            seen[key] = request.index


def _transaction_once(uow: UnitOfWork, requests: list[Request], *, base: str, clinic: str | None, prefer: str | None) -> Bundle:
    with uow:
        ordered = sorted(requests, key=lambda r: (ORDER[r.method], r.index))
        for request in (r for r in ordered if r.method == "DELETE"):
            request.result = _entry_or_raise(uow, request, base=base, clinic=clinic, prefer=prefer)
        mapping = _assign_ids(uow, requests)
        for request in requests:
            if request.resource is not None:
                request.resource = _rewrite(request.resource, mapping, _resolver(uow, request))
        writes = _dependency_order([r for r in ordered if r.method in ("POST", "PUT")])
        for request in writes + [r for r in ordered if r.method in ("GET", "HEAD")]:
            request.result = _entry_or_raise(uow, request, base=base, clinic=clinic, prefer=prefer)
        uow.commit()
    response = Bundle("transaction-response")
    response.entries = [r.result for r in requests if r.result is not None]
    return response


def _references(value: Any) -> set[str]:
    if isinstance(value, dict):
        found = {value["reference"]} if isinstance(value.get("reference"), str) else set()
        for item in value.values():
            found |= _references(item)
        return found
    if isinstance(value, list):
        return set().union(*(_references(v) for v in value)) if value else set()
    return set()


def _dependency_order(writes: list[Request]) -> list[Request]:
    """POSTs then PUTs (FHIR order), except that an entry referring to a resource another
    entry writes comes after that entry (so reference checks see it); cycles keep FHIR order."""
    target = {f"{r.resource_type}/{r.assigned_id}": r.index for r in writes if r.assigned_id}
    needs = {r.index: {target[ref] for ref in _references(r.resource) if ref in target} - {r.index} for r in writes}
    done: set[int] = set()
    result: list[Request] = []
    pending = list(writes)
    while pending:
        ready = next((r for r in pending if needs[r.index] <= done), pending[0])
        pending.remove(ready)
        done.add(ready.index)
        result.append(ready)
    return result


def _resolver(uow: UnitOfWork, request: Request) -> Callable[[str], str]:
    def resolve(reference: str) -> str:
        resource_type, _, criteria = reference.partition("?")
        try:
            matches = conditional_matches(uow, resource_type, criteria, "conditional reference")
        except FhirError as error:
            raise error.prefixed(f"{request.where}.resource") from None
        if len(matches) != 1:
            raise FhirError.of(
                412, f"conditional reference {reference[:100]!r} matches {len(matches)} resources (needs exactly one)",
                "multiple-matches" if matches else "not-found", [f"{request.where}.resource"],
            )
        return f"{resource_type}/{matches[0]}"

    return resolve


def _entry_or_raise(uow: UnitOfWork, request: Request, **options: Any) -> BundleEntry:
    try:
        return _run(uow, request, **options)
    except FhirError as error:
        prefix = f"{request.where}.resource" if request.method in ("POST", "PUT") else f"{request.where}.request"
        raise error.prefixed(prefix) from None


def batch(uow_factory: Callable[[], UnitOfWork], bundle: Any, *, base: str, clinic: str | None = None, prefer: str | None = None) -> Bundle:
    _, requests = _requests(bundle, base)
    for request in sorted(requests, key=lambda r: (ORDER[r.method], r.index)):
        request.result = _batch_entry(uow_factory, request, base=base, clinic=clinic, prefer=prefer)
    response = Bundle("batch-response")
    response.entries = [r.result for r in requests if r.result is not None]
    return response


def _batch_entry(uow_factory: Callable[[], UnitOfWork], request: Request, **options: Any) -> BundleEntry:
    for attempt in (1, 2):
        uow = uow_factory()
        try:
            with uow:
                if request.method == "PUT" and request.conditional is not None:
                    _assign_ids(uow, [request])
                if request.method == "POST" and request.if_none_exist:
                    _assign_ids(uow, [request])
                entry = _run(uow, request, **options)
                uow.commit()
            return entry
        except FhirError as error:
            failed = error.prefixed(f"{request.where}.resource" if request.resource is not None else f"{request.where}.request")
            return BundleEntry(None, None, None, None, {"status": _status(error.status), "outcome": failed.outcome()})
        except ConcurrentWriteError:
            if attempt == 2:
                outcome = operation_outcome([OutcomeIssue("error", "conflict", "a concurrent request changed the same resource")])
                return BundleEntry(None, None, None, None, {"status": _status(409), "outcome": outcome})
    raise AssertionError("unreachable")  # pragma: no cover


def process(uow_factory: Callable[[], UnitOfWork], bundle: Any, *, base: str, clinic: str | None = None, prefer: str | None = None) -> Bundle:
    """POST [base]: run a transaction or batch Bundle."""
    kind = bundle.get("type") if isinstance(bundle, dict) else None
    if kind == "batch":
        return batch(uow_factory, bundle, base=base, clinic=clinic, prefer=prefer)
    return transaction(uow_factory(), bundle, base=base, clinic=clinic, prefer=prefer)


def outcome_bytes(error: FhirError) -> bytes:
    return orjson.dumps(error.outcome())
