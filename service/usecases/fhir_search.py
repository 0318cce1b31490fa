"""FHIR search (R4): the search parameters each resource type supports, parsing of a query into
a store `SearchSpec`, keyset paging with opaque cursors, `_include`, `_summary=count`, and the
searchset Bundle built from stored bytes. Also `Patient/$everything`.

Search parameters are DATA (`SEARCH_PARAMETERS`): the SQL (service/store/fhir_search.py) and
the CapabilityStatement are both generated from it, so they cannot disagree.

Unknown parameters follow `Prefer: handling=`: `strict` -> 400 naming the parameter;
`lenient` (default) -> ignored, reported in an OperationOutcome entry (search.mode outcome),
and left out of the `self` link.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import datetime as dt
import re
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Sequence
from urllib.parse import urlencode

import orjson

from ..store import UnitOfWork
from ..store.fhir_search import DateFilter, DateMatch, FoundResource, SearchSpec, SortKey, TokenFilter, TokenMatch
from .fhir_bundle import Bundle, BundleEntry
from .fhir_errors import FhirError, OutcomeIssue, invalid, not_found, operation_outcome
from .fhir_types import READ_TYPES, valid_id

UTC = dt.timezone.utc
DEFAULT_COUNT = 50
MAX_COUNT = 1000


# --------------------------------------------------------------------------- parameters


@dataclass(frozen=True)
class SearchParameter:
    name: str
    type: str
    """FHIR search parameter type: token, date, reference."""
    target: str
    """How it is answered: 'id', 'last_updated', 'patient', 'date', 'status', 'token:<param>',
    'ref:<param>' (reference token)."""
    documentation: str
    include: tuple[str, ...] = ()
    """For reference parameters usable in `_include`: the JSON elements holding the reference."""
    ref_types: tuple[str, ...] = ()
    """Target resource types of a reference parameter."""
    definition: str | None = None
    """Canonical URL of the standard SearchParameter, when this is one."""


def _p(name: str, type_: str, target: str, doc: str, include: tuple[str, ...] = (), ref_types: tuple[str, ...] = ()) -> SearchParameter:
    return SearchParameter(name, type_, target, doc, include, ref_types)


_ID = SearchParameter("_id", "token", "id", "Logical id of the resource", definition="http://hl7.org/fhir/SearchParameter/Resource-id")
_LAST_UPDATED = SearchParameter(
    "_lastUpdated", "date", "last_updated", "When the resource version last changed (prefixes eq ne lt le gt ge sa eb ap)",
    definition="http://hl7.org/fhir/SearchParameter/Resource-lastUpdated",
)
_PATIENT = _p("patient", "reference", "patient", "The patient (Patient/id or id)", ("subject", "patient", "beneficiary"), ("Patient",))
_SUBJECT = _p("subject", "reference", "patient", "The subject (Patient/id or id; only patients are subjects here)", ("subject",), ("Patient",))
_IDENTIFIER = _p("identifier", "token", "token:identifier", "A business identifier (system|value)")
_STATUS = _p("status", "token", "status", "The status code")
_CODE = _p("code", "token", "token:code", "The code (system|code, code, |code or system|)")
_CATEGORY = _p("category", "token", "token:category", "The category (system|code)")
_TYPE = _p("type", "token", "token:type", "The type (system|code)")
_ENCOUNTER = _p("encounter", "reference", "ref:encounter", "The encounter (Encounter/id or id)", ("encounter",), ("Encounter",))


def _date(name: str, doc: str) -> SearchParameter:
    return _p(name, "date", "date", doc + " (prefixes eq ne lt le gt ge sa eb ap; partial dates are ranges)")


_PER_TYPE: dict[str, tuple[SearchParameter, ...]] = {
    "AdverseEvent": (_SUBJECT, _date("date", "When the event occurred"), _CATEGORY,
                     _p("event", "token", "token:event", "The type of event")),
    "CarePlan": (_PATIENT, _SUBJECT, _date("date", "The care plan period"), _STATUS, _CATEGORY, _IDENTIFIER, _ENCOUNTER),
    "Condition": (_PATIENT, _SUBJECT, _CODE, _CATEGORY, _IDENTIFIER, _ENCOUNTER,
                  _p("clinical-status", "token", "token:clinical-status", "The clinical status"),
                  _p("verification-status", "token", "token:verification-status", "The verification status")),
    "Coverage": (_PATIENT, _p("beneficiary", "reference", "patient", "The covered patient", ("beneficiary",), ("Patient",)),
                 _IDENTIFIER, _STATUS, _TYPE),
    "Encounter": (_PATIENT, _SUBJECT, _date("date", "The encounter period"), _IDENTIFIER, _STATUS, _TYPE,
                  _p("class", "token", "token:class", "The encounter class")),
    "EpisodeOfCare": (_PATIENT, _date("date", "The episode period"), _IDENTIFIER, _STATUS, _TYPE),
    "Flag": (_PATIENT, _SUBJECT, _date("date", "The flag period"), _IDENTIFIER, _STATUS, _CATEGORY, _ENCOUNTER),
    "Location": (_IDENTIFIER, _STATUS, _TYPE),
    "Medication": (_CODE, _IDENTIFIER, _STATUS),
    "MedicationAdministration": (
        _PATIENT, _SUBJECT, _CODE, _IDENTIFIER, _STATUS, _date("effective-time", "When the administration happened"),
        _p("context", "reference", "ref:context", "The encounter or episode of care", ("context",), ("Encounter", "EpisodeOfCare")),
        _p("medication", "reference", "ref:medication", "The medication given (Medication/id)", ("medicationReference",), ("Medication",)),
    ),
    "MedicationRequest": (
        _PATIENT, _SUBJECT, _CODE, _IDENTIFIER, _STATUS, _CATEGORY, _ENCOUNTER, _date("authoredon", "When the request was written"),
        _p("medication", "reference", "ref:medication", "The medication requested (Medication/id)", ("medicationReference",), ("Medication",)),
    ),
    "Observation": (
        _PATIENT, _SUBJECT, _CODE, _date("date", "The clinically relevant time"), _IDENTIFIER, _STATUS, _CATEGORY, _ENCOUNTER,
        _p("component-code", "token", "token:component-code", "The code of a component"),
    ),
    "Organization": (_IDENTIFIER, _TYPE),
    "Patient": (_IDENTIFIER, _p("gender", "token", "token:gender", "The administrative gender"), _date("birthdate", "The birth date")),
    "Practitioner": (_IDENTIFIER,),
    "Procedure": (_PATIENT, _SUBJECT, _CODE, _date("date", "When the procedure was performed"), _IDENTIFIER, _STATUS,
                  _CATEGORY, _ENCOUNTER),
    "Provenance": (_date("recorded", "When the activity was recorded"),
                   _p("target", "reference", "ref:target", "The resource the provenance is about", ("target",), ()),),
    "QuestionnaireResponse": (_PATIENT, _SUBJECT, _IDENTIFIER, _STATUS, _ENCOUNTER, _date("authored", "When the answers were given")),
}

SEARCH_PARAMETERS: dict[str, dict[str, SearchParameter]] = {
    t: {p.name: p for p in (_ID, _LAST_UPDATED, *_PER_TYPE.get(t, ()))} for t in READ_TYPES
}
"""Resource type -> search parameter name -> definition (the CapabilityStatement lists these)."""

SORT_KEYS = ("_id", "_lastUpdated", "date")
CONTROL_PARAMETERS = ("_count", "_sort", "_include", "_summary", "_total", "_format", "_pretty", "_cursor")


def include_values(resource_type: str) -> list[str]:
    """The `_include` values a type supports, e.g. 'Observation:patient'."""
    return [f"{resource_type}:{p.name}" for p in SEARCH_PARAMETERS[resource_type].values() if p.include]


# --------------------------------------------------------------------------- values

_PREFIXES = ("eq", "ne", "lt", "le", "gt", "ge", "sa", "eb", "ap")
_DATE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?P<f>\.\d{1,9})?)?(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


def parse_date_value(raw: str, name: str) -> DateMatch:
    """'ge2026-03' -> DateMatch('ge', 2026-03-01T00:00Z, 2026-03-31T23:59:59.999999Z)."""
    prefix, text = "eq", raw
    if raw[:2] in _PREFIXES and not raw[:2].isdigit():
        prefix, text = raw[:2], raw[2:]
    elif raw[:1].isalpha():
        raise invalid(f"search parameter {name!r}: unknown prefix in {raw!r} (use one of {', '.join(_PREFIXES)})")
    match = _DATE.match(text)
    if not match:
        raise invalid(f"search parameter {name!r}: {text!r} is not a FHIR date, dateTime or instant")
    try:
        year = int(match["y"])
        if match["m"] is None:
            start = dt.datetime(year, 1, 1, tzinfo=UTC)
            end = dt.datetime(year, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
        elif match["d"] is None:
            month = int(match["m"])
            start = dt.datetime(year, month, 1, tzinfo=UTC)
            end = dt.datetime(year, month, calendar.monthrange(year, month)[1], 23, 59, 59, 999999, tzinfo=UTC)
        elif match["H"] is None:
            day = dt.date(year, int(match["m"]), int(match["d"]))
            start = dt.datetime.combine(day, dt.time.min, UTC)
            end = dt.datetime.combine(day, dt.time.max, UTC)
        else:
            tz = UTC
            if match["tz"] and match["tz"] != "Z":
                sign = 1 if match["tz"][0] == "+" else -1
                hours, minutes = int(match["tz"][1:3]), int(match["tz"][4:6])
                if hours > 14 or minutes > 59:
                    raise ValueError("offset out of range")
                tz = dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
            fraction = match["f"]
            micro = int((fraction[1:] + "000000")[:6]) if fraction else 0
            start = dt.datetime(
                year, int(match["m"]), int(match["d"]), int(match["H"]), int(match["M"]), int(match["S"] or 0), micro, tzinfo=tz
            ).astimezone(UTC)
            if fraction:
                width = dt.timedelta(microseconds=1)
            elif match["S"] is not None:
                width = dt.timedelta(seconds=1)
            else:
                width = dt.timedelta(minutes=1)
            end = start + width - dt.timedelta(microseconds=1)
    except (ValueError, OverflowError):
        raise invalid(f"search parameter {name!r}: {text!r} is not a valid date") from None
    return DateMatch(prefix, start, end)


def parse_token_value(raw: str) -> TokenMatch:
    if "|" not in raw:
        return TokenMatch(None, raw)
    system, _, code = raw.partition("|")
    return TokenMatch(system, code or None)


def _reference_id(raw: str, name: str, target_types: tuple[str, ...]) -> tuple[str | None, str]:
    """'Patient/x', 'x' or 'http://host/fhir/Patient/x' -> ('Patient', 'x'); type None for a bare id."""
    parts = raw.rstrip("/").split("/")
    if len(parts) >= 2:
        resource_type, resource_id = parts[-2], parts[-1]
        if "/_history/" in raw:
            raise invalid(f"search parameter {name!r}: version-specific references are not searchable ({raw!r})")
    else:
        resource_type, resource_id = None, parts[-1]
    if not resource_id or (resource_type is not None and not resource_type[:1].isupper()):
        raise invalid(f"search parameter {name!r}: {raw!r} is not a reference (Type/id or id)")
    return resource_type, resource_id


# --------------------------------------------------------------------------- query


@dataclass
class ParsedSearch:
    spec: SearchSpec
    count: int
    summary_count: bool
    total_mode: str
    includes: list[SearchParameter]
    cursor: tuple[str, list[Any]] | None
    kept: list[tuple[str, str]]
    """Parameters applied (for the self/next links; ignored ones are left out)."""
    warnings: list[OutcomeIssue] = field(default_factory=list)


def _split(value: str) -> list[str]:
    """Comma-separated alternatives ('\\,' escapes a comma)."""
    parts, current, escaped = [], "", False
    for char in value:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p for p in parts if p != ""]


def _integer(name: str, value: str) -> int:
    if not value.isdigit():
        raise invalid(f"{name} must be a non-negative integer, not {value!r}")
    return int(value)


def encode_cursor(direction: str, key: Sequence[Any]) -> str:
    values = [{"t": v.isoformat()} if isinstance(v, dt.datetime) else v for v in key]
    return base64.urlsafe_b64encode(orjson.dumps([direction, values])).decode().rstrip("=")


def decode_cursor(value: str) -> tuple[str, list[Any]]:
    try:
        direction, values = orjson.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        if direction not in ("n", "p") or not isinstance(values, list):
            raise ValueError("bad cursor")
        decoded = []
        for v in values:
            if isinstance(v, dict):
                decoded.append(dt.datetime.fromisoformat(v["t"]))
            elif isinstance(v, (str, int)):
                decoded.append(v)
            else:
                raise ValueError("bad cursor value")
        return direction, decoded
    except (binascii.Error, ValueError, TypeError, KeyError, orjson.JSONDecodeError):
        raise invalid(f"_cursor {value[:80]!r} is not a paging cursor of this server") from None


def parse_search(
    resource_type: str, params: Sequence[tuple[str, str]], *, strict: bool = False, clinic_id: str | None = None
) -> ParsedSearch:
    """Parse search parameters for `resource_type` into a store query (raises FhirError 400)."""
    if resource_type not in SEARCH_PARAMETERS:
        raise FhirError.of(404, f"resource type {resource_type!r} is not supported by this server", "not-supported")
    known = SEARCH_PARAMETERS[resource_type]
    ids: list[tuple[str, ...]] = []
    patients: list[tuple[str, ...]] = []
    statuses: list[tuple[str, ...]] = []
    excluded_statuses: list[tuple[str, ...]] = []
    tokens: list[TokenFilter] = []
    dates: list[DateFilter] = []
    impossible = False
    count, summary_count, total_mode = DEFAULT_COUNT, False, "accurate"
    sort: list[SortKey] = []
    includes: list[SearchParameter] = []
    cursor = None
    kept: list[tuple[str, str]] = []
    warnings: list[OutcomeIssue] = []

    def unknown(key: str, why: str) -> None:
        if strict:
            raise FhirError.of(400, f"{why} (Prefer: handling=strict)", "not-supported")
        warnings.append(OutcomeIssue("warning", "not-supported", f"{why}; it was ignored"))

    for key, value in params:
        if "\x00" in key or "\x00" in value:
            raise invalid("search parameters must not contain NUL characters")
        name, _, modifier = key.partition(":")
        if name == "_count":
            count = min(_integer("_count", value), MAX_COUNT)
        elif name == "_cursor":
            cursor = decode_cursor(value)
            continue
        elif name == "_sort":
            sort = []
            for item in _split(value):
                descending = item.startswith("-")
                sort_name = item.removeprefix("-")
                if sort_name not in SORT_KEYS or (sort_name == "date" and not _has_date(known)):
                    raise invalid(f"_sort by {sort_name!r} is not supported (use {', '.join(SORT_KEYS)})")
                sort.append(SortKey(sort_name, descending))
        elif name == "_summary":
            if value == "count":
                summary_count = True
            elif value != "false":
                unknown(key, f"_summary={value} is not supported (only count and false)")
                continue
        elif name == "_total":
            if value not in ("none", "estimate", "accurate"):
                raise invalid(f"_total must be none, estimate or accurate, not {value!r}")
            total_mode = value
        elif name == "_include":
            parts = value.split(":")
            param = known.get(parts[1]) if len(parts) in (2, 3) and parts[0] == resource_type else None
            if param is None or not param.include or (len(parts) == 3 and parts[2] not in (param.ref_types or (parts[2],))):
                unknown(key, f"_include={value} is not supported (supported: {', '.join(include_values(resource_type)) or 'none'})")
                continue
            includes.append(param if len(parts) == 2 else replace(param, ref_types=(parts[2],)))
        elif name in ("_format", "_pretty"):
            continue
        elif name not in known:
            unknown(key, f"search parameter {key!r} is not supported for {resource_type}")
            continue
        else:
            if value == "":
                continue
            param = known[name]
            alternatives = _split(value)
            if not alternatives:
                continue
            if param.type == "reference":
                if modifier and not (modifier in param.ref_types or (not param.ref_types and modifier in SEARCH_PARAMETERS)):
                    raise invalid(f"modifier :{modifier} is not supported for search parameter {name!r}")
                typed: list[tuple[str, str]] = []
                for alternative in alternatives:
                    ref_type, ref_id = _reference_id(alternative, name, param.ref_types)
                    candidates = (ref_type,) if ref_type else ((modifier,) if modifier else param.ref_types)
                    if not candidates:
                        raise invalid(f"search parameter {name!r} needs a typed reference (Type/id), not {alternative!r}")
                    typed.extend(
                        (t, ref_id) for t in candidates
                        if (not param.ref_types or t in param.ref_types) and (not modifier or t == modifier)
                    )
                if not typed:
                    impossible = True
                elif param.target == "patient":
                    patients.append(tuple(rid for _, rid in typed))
                else:
                    token_param = param.target.split(":", 1)[1]
                    tokens.append(TokenFilter(token_param, tuple(TokenMatch("", f"{t}/{rid}") for t, rid in typed)))
            elif param.type == "date":
                if modifier:
                    raise invalid(f"modifier :{modifier} is not supported for date parameter {name!r}")
                column = "last_updated" if param.target == "last_updated" else "date"
                dates.append(DateFilter(column, tuple(parse_date_value(a, name) for a in alternatives)))
            else:  # token
                if modifier not in ("", "not"):
                    raise invalid(f"modifier :{modifier} is not supported for token parameter {name!r}")
                matches = tuple(parse_token_value(a) for a in alternatives)
                if param.target == "id":
                    if modifier == "not":
                        raise invalid("_id:not is not supported")
                    ids.append(tuple(m.value or "" for m in matches))
                elif param.target == "status":  # the row's status column (status codes have no system here)
                    codes = tuple(m.value for m in matches if m.value and not m.system)
                    if modifier == "not":
                        if codes:
                            excluded_statuses.append(codes)
                    elif codes:
                        statuses.append(codes)
                    else:
                        impossible = True
                else:
                    tokens.append(TokenFilter(param.target.split(":", 1)[1], matches, negate=modifier == "not"))
        kept.append((key, value))
    spec = SearchSpec(
        resource_type=resource_type, ids=tuple(ids), patient_ids=tuple(patients), statuses=tuple(statuses),
        excluded_statuses=tuple(excluded_statuses),
        tokens=tuple(tokens), dates=tuple(dates), clinic_id=clinic_id, impossible=impossible, sort=tuple(sort),
    )
    return ParsedSearch(spec, count, summary_count, total_mode, includes, cursor, kept, warnings)


def _has_date(known: dict[str, SearchParameter]) -> bool:
    return any(p.target == "date" for p in known.values())


# --------------------------------------------------------------------------- execute


def _entry(base: str, found: FoundResource, mode: str) -> BundleEntry:
    return BundleEntry(found.json, f"{base}/{found.resource_type}/{found.id}", mode)


def _referenced(found: Iterable[FoundResource], include: SearchParameter) -> list[tuple[str, str]]:
    refs: list[tuple[str, str]] = []
    for item in found:
        resource = orjson.loads(item.json)
        for element in include.include:
            value = resource.get(element)
            for ref in value if isinstance(value, list) else [value]:
                reference = ref.get("reference") if isinstance(ref, dict) else None
                if not isinstance(reference, str) or reference.count("/") != 1:
                    continue
                ref_type, ref_id = reference.split("/")
                if (not include.ref_types or ref_type in include.ref_types) and ref_type in SEARCH_PARAMETERS:
                    refs.append((ref_type, ref_id))
    return refs


def _link(base: str, resource_type: str, params: Sequence[tuple[str, str]]) -> str:
    query = urlencode(list(params))
    return f"{base}/{resource_type}" + (f"?{query}" if query else "")


def search(
    uow: UnitOfWork, resource_type: str, params: Sequence[tuple[str, str]], *, base: str, strict: bool = False,
    clinic_id: str | None = None,
) -> Bundle:
    """Run a search; the searchset Bundle (entries are stored bytes)."""
    parsed = parse_search(resource_type, params, strict=strict, clinic_id=clinic_id)
    with uow:
        return run_search(uow, parsed, base=base)


def run_search(uow: UnitOfWork, parsed: ParsedSearch, *, base: str) -> Bundle:
    """Run a parsed search inside an open unit of work (also used inside transactions)."""
    spec = parsed.spec
    kept = [(k, v) for k, v in parsed.kept if k != "_cursor"]
    total = uow.search.count(spec) if parsed.total_mode != "none" or parsed.summary_count else None
    bundle = Bundle("searchset", total=total)
    if parsed.summary_count or parsed.count == 0:
        bundle.links.append(("self", _link(base, spec.resource_type, kept)))
        _add_warnings(bundle, parsed)
        return bundle
    after = before = None
    if parsed.cursor is not None:
        direction, key = parsed.cursor
        if direction == "n":
            after = key
        else:
            before = key
    rows, more = uow.search.search(spec, limit=parsed.count, after=after, before=before)
    self_params = kept + ([("_cursor", encode_cursor(*parsed.cursor))] if parsed.cursor else [])
    bundle.links.append(("self", _link(base, spec.resource_type, self_params)))
    has_next = more if before is None else True
    has_previous = (after is not None) if before is None else more
    if rows and has_next:
        bundle.links.append(("next", _link(base, spec.resource_type, kept + [("_cursor", encode_cursor("n", rows[-1].sort_key))])))
    if rows and has_previous:
        bundle.links.append(("previous", _link(base, spec.resource_type, kept + [("_cursor", encode_cursor("p", rows[0].sort_key))])))
    bundle.entries.extend(_entry(base, r, "match") for r in rows)
    seen = {(r.resource_type, r.id) for r in rows}
    for include in parsed.includes:
        wanted = [ref for ref in _referenced(rows, include) if ref not in seen]
        for item in uow.search.read_many(wanted):
            seen.add((item.resource_type, item.id))
            bundle.entries.append(_entry(base, item, "include"))
    _add_warnings(bundle, parsed)
    return bundle


def _outcome_entry(issues: list[OutcomeIssue]) -> BundleEntry:
    """The OperationOutcome entry (search.mode outcome) of ignored parameters; it has its own
    id and a urn:uuid fullUrl (every searchset entry needs one)."""
    outcome_id = str(uuid.uuid4())
    return BundleEntry(orjson.dumps(operation_outcome(issues, resource_id=outcome_id)), f"urn:uuid:{outcome_id}", "outcome")


def _add_warnings(bundle: Bundle, parsed: ParsedSearch) -> None:
    if parsed.warnings:
        bundle.entries.append(_outcome_entry(parsed.warnings))


# --------------------------------------------------------------------------- $everything

_EVERYTHING_REFERENCE = re.compile(rb'"reference":"(Practitioner|Organization|Location|Medication)/([A-Za-z0-9\-.]{1,64})"')


def everything(
    uow: UnitOfWork, patient_id: str, params: Sequence[tuple[str, str]], *, base: str, strict: bool = False
) -> Bundle:
    """`Patient/{id}/$everything`: the patient's compartment (every resource whose patient
    column is this patient, the Patient first by type order) plus the Practitioners,
    Organizations, Locations and Medications those resources refer to (search.mode include),
    paged by `_count` with next links (keyset on (resource type, id))."""
    count, after, kept, warnings = DEFAULT_COUNT, None, [], []
    for key, value in params:
        if key == "_count":
            count = max(1, min(_integer("_count", value), MAX_COUNT))
        elif key == "_cursor":
            direction, values = decode_cursor(value)
            if direction != "n" or len(values) != 2 or not all(isinstance(v, str) for v in values):
                raise invalid("_cursor is not a $everything cursor of this server")
            after = (values[0], values[1])
            continue
        elif key in ("_format", "_pretty"):
            continue
        else:
            if strict:
                raise FhirError.of(400, f"parameter {key!r} is not supported by $everything (Prefer: handling=strict)", "not-supported")
            warnings.append(OutcomeIssue("warning", "not-supported", f"parameter {key!r} is not supported by $everything; it was ignored"))
            continue
        kept.append((key, value))
    if not valid_id(patient_id):
        raise invalid(f"{patient_id[:80]!r} is not a valid resource id")
    with uow:
        patient = uow.resources.read("Patient", patient_id)
        if patient is None:
            if uow.search.was_deleted("Patient", patient_id):
                raise FhirError.of(410, f"Patient/{patient_id} has been deleted", "deleted")
            raise not_found("Patient", patient_id)
        rows, more = uow.search.compartment(patient_id, limit=count, after=after)
        path = f"{base}/Patient/{patient_id}/$everything"
        bundle = Bundle("searchset")
        own = kept + ([("_cursor", encode_cursor("n", list(after)))] if after else [])
        bundle.links.append(("self", path + (f"?{urlencode(own)}" if own else "")))
        if more and rows:
            bundle.links.append(("next", f"{path}?{urlencode(kept + [('_cursor', encode_cursor('n', [rows[-1].resource_type, rows[-1].id]))])}"))
        bundle.entries.extend(_entry(base, r, "match") for r in rows)
        seen = {(r.resource_type, r.id) for r in rows}
        wanted: list[tuple[str, str]] = []
        for row in rows:
            for match in _EVERYTHING_REFERENCE.finditer(row.json):
                ref = (match[1].decode(), match[2].decode())
                if ref not in seen:
                    seen.add(ref)
                    wanted.append(ref)
        bundle.entries.extend(_entry(base, r, "include") for r in uow.search.read_many(wanted))
    if warnings:
        bundle.entries.append(_outcome_entry(warnings))
    return bundle
