"""FHIR create, update, delete (plain and conditional) for the types EHRs send in
(`WRITE_TYPES`): validate (R4B structure + business rules) -> resolve the clinic (tenant) ->
store a new version through the same repositories and outbox as domain writes, in one unit
of work. Resources written here have no domain record: source kind `fhir`.

The clinic comes from the `X-Clinic-Id` header, else from the body (Patient's
managingOrganization -> that Organization's clinic; other types -> their patient's clinic),
else, on update, from the stored resource. (Auth will replace the header with the token's
clinic claim.)

Each verb has an `*_in(uow, ...)` form that works inside an open unit of work without
committing (transactions use those) and a public form that owns its unit of work.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar
from urllib.parse import parse_qsl

import orjson
from pydantic import ValidationError

from ..fhir import r4
from ..store import UnitOfWork
from ..store.repository import ResourceWrite
from ..store.unit_of_work import ConcurrentWriteError
from .fhir_errors import FhirError, OutcomeIssue, invalid
from .fhir_read import check_id, check_type, gone
from .fhir_search import parse_search
from .fhir_types import FHIR_SOURCE_KIND, WRITE_TYPES, valid_id

STATUS_CODES: dict[str, tuple[str, ...]] = {
    "Observation": ("registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error", "unknown"),
    "QuestionnaireResponse": ("in-progress", "completed", "amended", "entered-in-error", "stopped"),
    "Coverage": ("active", "cancelled", "draft", "entered-in-error"),
}
T = TypeVar("T")
PATIENT_ELEMENT: dict[str, str] = {"Observation": "subject", "QuestionnaireResponse": "subject", "Coverage": "beneficiary"}
"""The element naming the patient a resource belongs to (required, must exist)."""


@dataclass(frozen=True)
class Written:
    """The outcome of a write: the version now current (or the match of a conditional create)."""

    resource_type: str
    id: str
    version_id: int
    last_updated: dt.datetime
    json: bytes
    created: bool
    changed: bool = True

    @property
    def status(self) -> int:
        return 201 if self.created else 200


@dataclass(frozen=True)
class Deleted:
    resource_type: str
    id: str
    version_id: int | None
    """The tombstone version; None when there was nothing to delete (already deleted)."""


# --------------------------------------------------------------------------- validation


def _expression(resource_type: str, loc: Sequence[Any]) -> str:
    path = resource_type
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and part and not part.startswith(("function-", "__")) and "[" not in part:
            path += f".{part}"
    return path


def structure_issues(resource: dict) -> list[OutcomeIssue]:
    """Problems the R4B models find, one issue per element (expression = FHIRPath)."""
    resource_type = resource.get("resourceType")
    if b"\\u0000" in orjson.dumps(resource):
        return [OutcomeIssue("error", "invalid", "NUL characters are not allowed in FHIR strings", (str(resource_type),))]
    try:
        r4.parse(resource)
    except ValidationError as error:
        issues = []
        for item in error.errors(include_url=False, include_input=False):
            message = str(item.get("msg", "invalid value")).removeprefix("Value error, ")
            if item.get("type") == "extra_forbidden":
                message = "unknown element (not part of FHIR R4 " + str(resource_type) + ")"
            code = "required" if item.get("type") == "missing" else "structure" if item.get("type") == "extra_forbidden" else "value"
            issues.append(OutcomeIssue("error", code, message[:500], (_expression(str(resource_type), item.get("loc", ())),)))
        return issues or [OutcomeIssue("error", "structure", f"not a valid {resource_type}", (str(resource_type),))]
    except (ImportError, AttributeError):
        return [OutcomeIssue("error", "not-supported", f"unknown resource type {str(resource_type)[:60]!r}", ("resourceType",))]
    except Exception as error:  # noqa: BLE001 - the models raise assorted errors on odd input
        return [OutcomeIssue("error", "structure", f"not a valid {resource_type} ({type(error).__name__})", (str(resource_type),))]
    return []


def _patient_reference(resource: dict, element: str) -> str | None:
    value = resource.get(element)
    reference = value.get("reference") if isinstance(value, dict) else None
    if isinstance(reference, str) and reference.startswith("Patient/") and reference.count("/") == 1:
        return reference.removeprefix("Patient/")
    return None


def rule_issues(uow: UnitOfWork, resource: dict) -> list[OutcomeIssue]:
    """Our business rules (beyond FHIR structure) for resources EHRs send in."""
    resource_type = resource["resourceType"]
    issues: list[OutcomeIssue] = []
    allowed = STATUS_CODES.get(resource_type)
    if allowed is not None:
        status = resource.get("status")
        if status is None:
            issues.append(OutcomeIssue("error", "required", f"{resource_type}.status is required", (f"{resource_type}.status",)))
        elif status not in allowed:
            issues.append(OutcomeIssue(
                "error", "code-invalid", f"status {str(status)[:40]!r} is not one of {', '.join(allowed)}", (f"{resource_type}.status",)
            ))
    element = PATIENT_ELEMENT.get(resource_type)
    if element is not None:
        expression = f"{resource_type}.{element}"
        patient_id = _patient_reference(resource, element)
        if element not in resource:
            issues.append(OutcomeIssue("error", "required", f"{expression} is required (a reference to the Patient)", (expression,)))
        elif patient_id is None:
            issues.append(OutcomeIssue("error", "invalid", f"{expression} must reference a Patient (Patient/id)", (expression,)))
        elif uow.resources.read("Patient", patient_id) is None:
            issues.append(OutcomeIssue("error", "not-found", f"{expression}: Patient/{patient_id} does not exist", (expression,)))
    if resource_type == "Patient":
        identifiers = resource.get("identifier") if isinstance(resource.get("identifier"), list) else []
        if not any(isinstance(i, dict) and i.get("system") and i.get("value") for i in identifiers):
            issues.append(OutcomeIssue(
                "error", "required", "Patient.identifier with system and value is required (records are matched by it)",
                ("Patient.identifier",),
            ))
    return issues


def check_resource(uow: UnitOfWork, resource: dict) -> None:
    """422 with every structural problem, else with every rule problem."""
    issues = structure_issues(resource)
    if not issues:
        issues = rule_issues(uow, resource)
    if issues:
        raise FhirError(422, issues)


def _body(resource_type: str, body: Any) -> dict:
    if not isinstance(body, dict):
        raise invalid("the body must be a JSON object (a FHIR resource)")
    if body.get("resourceType") != resource_type:
        raise invalid(
            f"resourceType {str(body.get('resourceType'))[:60]!r} does not match the URL ({resource_type})", "resourceType"
        )
    return body


def check_write_type(resource_type: str) -> None:
    check_type(resource_type)
    if resource_type not in WRITE_TYPES:
        raise FhirError.of(
            405, f"{resource_type} is read-only here (written from program records); writable: {', '.join(WRITE_TYPES)}",
            "not-supported",
        )


# --------------------------------------------------------------------------- clinic


def _clinic_of_reference(uow: UnitOfWork, resource_type: str, reference: Any) -> str | None:
    ref = reference.get("reference") if isinstance(reference, dict) else None
    if not isinstance(ref, str) or not ref.startswith(f"{resource_type}/"):
        return None
    stored = uow.resources.read(resource_type, ref.split("/", 1)[1])
    return stored.clinic_id if stored else None


def resolve_clinic(uow: UnitOfWork, resource: dict, header: str | None, existing_clinic: str | None) -> str:
    resource_type = resource["resourceType"]
    from_body = None
    expression = None
    if resource_type == "Patient" and "managingOrganization" in resource:
        from_body, expression = _clinic_of_reference(uow, "Organization", resource["managingOrganization"]), "Patient.managingOrganization"
    elif resource_type in PATIENT_ELEMENT:
        element = PATIENT_ELEMENT[resource_type]
        from_body, expression = _clinic_of_reference(uow, "Patient", resource.get(element)), f"{resource_type}.{element}"
    clinic = header or from_body or existing_clinic
    if clinic is None:
        raise invalid("the clinic is unknown: send an X-Clinic-Id header (or a managingOrganization / patient reference of a known clinic)")
    if from_body is not None and from_body != clinic:
        raise FhirError.of(422, f"{expression} belongs to another clinic than {clinic!r}", "business-rule", [expression or resource_type])
    if existing_clinic is not None and existing_clinic != clinic:
        raise FhirError.of(409, f"{resource_type}/{resource.get('id')} belongs to another clinic", "conflict")
    if not uow.records.exists("clinics", clinic, clinic):
        raise invalid(f"clinic {clinic[:64]!r} is not known to this server (X-Clinic-Id)")
    return clinic


# --------------------------------------------------------------------------- write


def _store(uow: UnitOfWork, resource: dict, clinic: str, *, created: bool) -> Written:
    write: ResourceWrite = uow.resources.save(resource, clinic_id=clinic, source=(FHIR_SOURCE_KIND, clinic, resource["id"]))
    if write.changed:
        uow.outbox.append(write)
    stored = uow.resources.read(write.resource_type, write.id)
    assert stored is not None and stored.json is not None
    return Written(write.resource_type, write.id, stored.version_id, stored.last_updated, stored.json, created, write.changed)


def _existing(uow: UnitOfWork, resource_type: str, resource_id: str) -> Written:
    stored = uow.resources.read(resource_type, resource_id)
    assert stored is not None and stored.json is not None
    return Written(resource_type, resource_id, stored.version_id, stored.last_updated, stored.json, False, False)


def conditional_matches(uow: UnitOfWork, resource_type: str, criteria: str, header: str = "If-None-Exist") -> list[str]:
    """Ids of the (at most 2) resources matching search criteria like 'identifier=sys|val'."""
    params = parse_qsl(criteria.lstrip("?"), keep_blank_values=True)
    if not params:
        raise invalid(f"{header}: no search criteria in {criteria[:100]!r}")
    parsed = parse_search(resource_type, params, strict=True)
    rows, _ = uow.search.search(parsed.spec, limit=2)
    return [r.id for r in rows]


def create_in(
    uow: UnitOfWork, resource_type: str, body: Any, *, clinic_header: str | None = None, if_none_exist: str | None = None,
    assigned_id: str | None = None,
) -> Written:
    """POST: a new resource with a server-assigned id (uuid4), or, with If-None-Exist, the
    one existing match (200), 412 when several match."""
    check_write_type(resource_type)
    resource = dict(_body(resource_type, body))
    if if_none_exist:
        matches = conditional_matches(uow, resource_type, if_none_exist)
        if len(matches) > 1:
            raise FhirError.of(412, f"If-None-Exist {if_none_exist[:100]!r} matches more than one {resource_type}", "multiple-matches")
        if matches:
            return _existing(uow, resource_type, matches[0])
    resource["id"] = assigned_id or str(uuid.uuid4())
    check_resource(uow, resource)
    clinic = resolve_clinic(uow, resource, clinic_header, None)
    return _store(uow, resource, clinic, created=True)


def _version_of(if_match: str) -> int:
    text = if_match.strip().removeprefix("W/").strip('"')
    if not text.isdigit() or len(text) > 9:
        raise FhirError.of(412, f"If-Match {if_match[:40]!r} is not a version ETag of this server (W/\"<version>\")", "conflict")
    return int(text)


def update_in(
    uow: UnitOfWork, resource_type: str, resource_id: str, body: Any, *, clinic_header: str | None = None,
    if_match: str | None = None,
) -> Written:
    """PUT Type/id: update, or create with the client's id when absent (or deleted)."""
    check_write_type(resource_type)
    check_id(resource_id)
    resource = dict(_body(resource_type, body))
    if "id" not in resource:
        raise invalid("the resource must carry an id equal to the one in the URL", f"{resource_type}.id")
    if resource["id"] != resource_id:
        raise invalid(f"the id in the body ({str(resource['id'])[:64]!r}) differs from the URL ({resource_id!r})", f"{resource_type}.id")
    current = uow.resources.read(resource_type, resource_id)
    if if_match is not None:
        wanted = _version_of(if_match)
        if current is None:
            raise FhirError.of(412, f"If-Match: {resource_type}/{resource_id} does not exist", "conflict")
        if current.version_id != wanted:
            raise FhirError.of(
                412, f"If-Match: {resource_type}/{resource_id} is at version {current.version_id}, not {wanted}", "conflict"
            )
    if current is not None:
        owner = uow.search.source_kind(resource_type, resource_id)
        if owner not in (None, FHIR_SOURCE_KIND):
            raise FhirError.of(
                409, f"{resource_type}/{resource_id} is maintained from program records ({owner}); change it through /api/v1",
                "conflict",
            )
    check_resource(uow, resource)
    clinic = resolve_clinic(uow, resource, clinic_header, current.clinic_id if current else None)
    return _store(uow, resource, clinic, created=current is None)


def conditional_update_in(
    uow: UnitOfWork, resource_type: str, criteria: str, body: Any, *, clinic_header: str | None = None,
    if_match: str | None = None,
) -> Written:
    """PUT Type?criteria: update the one match, create when none (412 when several)."""
    check_write_type(resource_type)
    resource = dict(_body(resource_type, body))
    matches = conditional_matches(uow, resource_type, criteria, "conditional update")
    if len(matches) > 1:
        raise FhirError.of(412, f"conditional update {criteria[:100]!r} matches more than one {resource_type}", "multiple-matches")
    if matches:
        if "id" in resource and resource["id"] != matches[0]:
            raise invalid(f"the id in the body differs from the matching {resource_type}/{matches[0]}", f"{resource_type}.id")
        resource["id"] = matches[0]
    elif "id" in resource:
        if not isinstance(resource["id"], str) or not valid_id(resource["id"]):
            raise invalid("the id in the body is not a valid id", f"{resource_type}.id")
        if uow.resources.read(resource_type, resource["id"]) is not None:
            raise FhirError.of(409, f"{resource_type}/{resource['id']} exists but does not match {criteria[:100]!r}", "conflict")
    else:
        resource["id"] = str(uuid.uuid4())
    return update_in(uow, resource_type, resource["id"], resource, clinic_header=clinic_header, if_match=if_match)


def delete_in(uow: UnitOfWork, resource_type: str, resource_id: str) -> Deleted:
    """DELETE Type/id: a tombstone version plus an outbox row; deleting again is a no-op."""
    check_write_type(resource_type)
    check_id(resource_id)
    current = uow.resources.read(resource_type, resource_id)
    if current is None:
        if uow.search.was_deleted(resource_type, resource_id):
            return Deleted(resource_type, resource_id, None)
        raise FhirError.of(404, f"{resource_type}/{resource_id} is not known", "not-found")
    owner = uow.search.source_kind(resource_type, resource_id)
    if owner not in (None, FHIR_SOURCE_KIND):
        raise FhirError.of(409, f"{resource_type}/{resource_id} is maintained from program records ({owner})", "conflict")
    write = uow.resources.delete(resource_type, resource_id)
    assert write is not None
    uow.outbox.append(write)
    return Deleted(resource_type, resource_id, write.version_id)


# --------------------------------------------------------------------------- own the unit of work


def in_transaction(uow: UnitOfWork, work: Callable[[UnitOfWork], T]) -> T:
    """Run `work` in one unit of work and commit; a concurrent write of the same rows is
    retried once, then reported as 409."""
    for attempt in (1, 2):
        try:
            with uow:
                result = work(uow)
                uow.commit()
            return result
        except ConcurrentWriteError:
            if attempt == 2:
                raise FhirError.of(409, "a concurrent request changed the same resource; retry", "conflict") from None
    raise AssertionError("unreachable")  # pragma: no cover


def create(uow: UnitOfWork, resource_type: str, body: Any, **options: Any) -> Written:
    return in_transaction(uow, lambda u: create_in(u, resource_type, body, **options))


def update(uow: UnitOfWork, resource_type: str, resource_id: str, body: Any, **options: Any) -> Written:
    return in_transaction(uow, lambda u: update_in(u, resource_type, resource_id, body, **options))


def conditional_update(uow: UnitOfWork, resource_type: str, criteria: str, body: Any, **options: Any) -> Written:
    return in_transaction(uow, lambda u: conditional_update_in(u, resource_type, criteria, body, **options))


def delete(uow: UnitOfWork, resource_type: str, resource_id: str) -> Deleted:
    return in_transaction(uow, lambda u: delete_in(u, resource_type, resource_id))


def parse_json(body: bytes) -> Any:
    """The request body as JSON (400 when it is not)."""
    if not body.strip():
        raise invalid("the request body is empty; send a FHIR resource")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise invalid(f"the request body is not valid JSON ({str(error)[:120]})") from None


__all__ = [
    "Deleted", "Written", "check_resource", "conditional_update", "create", "create_in", "delete", "delete_in", "gone",
    "parse_json", "rule_issues", "structure_issues", "update", "update_in",
]
