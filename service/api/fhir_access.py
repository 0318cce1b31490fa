"""Access control of the FHIR REST API, kept out of its handlers (service/api/fhir/):

- `fhir_guard`: the FHIR router's dependency. It authenticates (except for the
  CapabilityStatement), requires the `fhir.api` door, maps the matched route to a SMART
  interaction and checks the token's scopes (read/vread/history -> r, search -> s, create -> c,
  update -> u, delete -> d, `$everything` -> r+s on every type, `$validate` -> c or u, each
  transaction/batch entry by its method and URL), confines patient tokens (`Patient/$everything`
  only for their own patient), and keeps a `FhirAccess` in `request.state.fhir_access`.
- `scoped(request, uow)`: THE hook the FHIR layer calls for every unit of work it opens. The
  returned unit of work only sees the token's clinic (and patient, for patient-context tokens):
  reads of other tenants' resources are not found (404, nothing leaks), searches, `_include`,
  history and `$everything` are filtered in SQL or per row, and writes that would touch another
  clinic's or patient's resource fail with 403.

`AuditEvent` is not a stored FHIR type: its read/search are served by service/api/audit.py.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from fastapi import Request

from ..auth import AuthError, Principal, require_role
from ..auth.errors import forbidden
from ..auth.roles import Action
from ..store import UnitOfWork
from ..usecases.fhir_errors import FhirError
from ..usecases.fhir_types import READ_TYPES
from .security import authenticate, is_global_admin

PUBLIC_OPERATIONS = frozenset({"fhir_capabilities", "fhir_smart_configuration"})

MAX_AUDIT_ENTITIES = 200
READ_OPS = {"fhir_read": "read", "fhir_vread": "read", "fhir_history_instance": "history"}
SEARCH_OPS = {"fhir_search", "fhir_search_post"}


@dataclass(frozen=True)
class FhirAccess:
    """What this request may see: one clinic (None = every clinic, a global admin) and, for a
    patient-context token, one patient's compartment (plus resources of no patient)."""

    clinic_id: str | None
    patient_id: str | None
    subject: str = ""
    touched: list[tuple[str, str, str | None]] = field(default_factory=list, compare=False)
    """(type, id, patient) of resources read or written (for the audit trail; capped)."""

    def touch(self, resource_type: str, resource_id: str, patient_id: str | None) -> None:
        if len(self.touched) < MAX_AUDIT_ENTITIES:
            self.touched.append((resource_type, resource_id, patient_id))

    def visible(self, clinic_id: str | None, patient_id: str | None) -> bool:
        if self.clinic_id is not None and clinic_id != self.clinic_id:
            return False
        if self.patient_id is not None and patient_id is not None and patient_id != self.patient_id:
            return False
        return True


def _denied() -> AuthError:
    return forbidden("insufficient_scope", "The token's scopes do not allow this interaction.")


def _require(principal: Principal, resource_type: str, interaction: str, *, allow_filtered: bool = False) -> None:
    grant = principal.grant(resource_type, interaction)
    if grant is None:
        raise _denied()
    if grant.filters and not allow_filtered:
        # granular scopes (?category=...) are only honoured on searches (as extra criteria)
        raise _denied()


def _check_entries(request: Request, principal: Principal, body: Any) -> None:
    """Every entry of a transaction/batch Bundle against the scopes (before anything runs)."""
    from ..usecases.fhir_transaction import _requests  # the same parser the transaction uses

    from .fhir.common import base_url

    _kind, requests = _requests(body, base_url(request))
    for entry in requests:
        interaction = {"POST": "create", "PUT": "update", "DELETE": "delete"}.get(entry.method)
        if interaction is None:  # GET / HEAD
            interaction = "read" if entry.resource_id is not None else "search"
        _require(principal, entry.resource_type, interaction)  # granular (filtered) grants refused here


def granular_filters(request: Request, resource_type: str) -> list[tuple[str, str]]:
    """Extra search criteria from a granular scope (`system/Observation.rs?category=x`): with
    one filter its pairs are AND-ed to the search; several alternative filters are refused."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        return []
    grant = principal.grant(resource_type, "search")
    if grant is None or not grant.filters:
        return []
    if len(grant.filters) > 1:
        raise _denied()
    return list(grant.filters[0])


PATIENT_PARAMS = ("patient", "subject", "beneficiary")


def _check_patient_params(request: Request, principal: Principal) -> None:
    """A patient-context token naming another patient in a search is refused outright (403)
    rather than answered with an empty page."""
    for key, value in request.query_params.multi_items():
        if key.split(":")[0] in PATIENT_PARAMS:
            for alternative in value.split(","):
                if alternative and alternative.rstrip("/").split("/")[-1] != principal.patient_id:
                    raise forbidden("patient_compartment", "The token is confined to a different patient's compartment.")


async def fhir_guard(request: Request) -> None:
    """The FHIR router's dependency (see module docstring)."""
    route = request.scope.get("route")
    operation = getattr(route, "operation_id", None)
    if operation in PUBLIC_OPERATIONS:
        return
    principal = await authenticate(request)
    require_role(principal, Action.FHIR_API)
    params = request.path_params
    resource_type = params.get("resource_type", "Patient" if operation == "fhir_patient_everything" else "")
    if resource_type and resource_type not in READ_TYPES and operation not in (None, "fhir_transaction"):
        # unknown types are the handlers' 404; they never reach data
        pass
    elif operation in READ_OPS:
        _require(principal, resource_type, READ_OPS[operation])
        if principal.confined_to_patient and resource_type == "Patient" and params.get("resource_id") != principal.patient_id:
            raise forbidden("patient_compartment", "The token is confined to a different patient's compartment.")
    elif operation in SEARCH_OPS:
        _require(principal, resource_type, "search", allow_filtered=True)
        if principal.confined_to_patient:
            _check_patient_params(request, principal)
    elif operation == "fhir_history_type":
        _require(principal, resource_type, "read")
        _require(principal, resource_type, "search")
    elif operation == "fhir_create":
        _require(principal, resource_type, "create")
    elif operation == "fhir_update":
        _require(principal, resource_type, "update")
    elif operation == "fhir_update_conditional":
        _require(principal, resource_type, "update")
        _require(principal, resource_type, "search")
    elif operation == "fhir_delete":
        _require(principal, resource_type, "delete")
    elif operation == "fhir_validate":
        if principal.grant(resource_type, "create") is None and principal.grant(resource_type, "update") is None:
            raise _denied()
    elif operation == "fhir_patient_everything":
        if not principal.scopes.allows_operation("$everything", READ_TYPES):
            raise _denied()
        if principal.confined_to_patient and params.get("resource_id") != principal.patient_id:
            raise forbidden("patient_compartment", "The token is confined to a different patient's compartment.")
    elif operation in ("fhir_export", "fhir_patient_export"):
        wanted = [t for v in request.query_params.getlist("_type") for t in v.split(",") if t.strip()] or list(READ_TYPES)
        if operation == "fhir_export" and not principal.scopes.allows_operation("$export", wanted):
            raise _denied()
        if operation == "fhir_patient_export" and len(principal.scopes.permitted_types(wanted)) != len(wanted):
            raise _denied()
    elif operation in ("fhir_export_status", "fhir_export_file", "fhir_export_cancel"):
        pass  # the job's owner clinic is checked by the export routes (404 for another clinic's job)
    elif operation == "fhir_transaction":
        from ..usecases.fhir_write import parse_json
        from .json_limits import check_depth

        body = await request.body()
        if body.strip():
            check_depth(body)
            try:
                document = parse_json(body)
            except FhirError:
                document = None  # the handler answers 400
            if isinstance(document, dict):
                _check_entries(request, principal, document)
    else:
        # an operation added later without a mapping here: admin only, until it is mapped
        if "admin" not in principal.roles:
            raise _denied()
    clinic = principal.clinic_id
    if clinic is None and not is_global_admin(principal):
        raise forbidden("clinic_required", "The token carries no clinic claim.")
    if clinic is None:  # a global admin naming a clinic (X-Clinic-Id) acts for that clinic only
        named = request.headers.get("x-clinic-id", "").strip()
        clinic = named or None
    request.state.fhir_access = FhirAccess(clinic, principal.patient_id, principal.subject)
    request.state.audit_resource_type = resource_type or None


# --------------------------------------------------------------------------- the hook


def access_of(request: Request) -> FhirAccess | None:
    return getattr(request.state, "fhir_access", None)


def scoped(request: Request, uow: UnitOfWork) -> UnitOfWork:
    """THE hook: `uow` confined to the request's clinic / patient (unchanged for a global
    admin or when auth is disabled)."""
    access = access_of(request)
    if access is None:
        return uow
    return ScopedUnitOfWork(uow, access)


def scoped_factory(request: Request, factory: Callable[[], UnitOfWork]) -> Callable[[], UnitOfWork]:
    return lambda: scoped(request, factory())


def clinic_for_writes(request: Request, header: str | None) -> str | None:
    """The clinic FHIR writes go to: the token's (an `X-Clinic-Id` naming another -> 403)."""
    access = access_of(request)
    if access is None or access.clinic_id is None:
        return header
    if header is not None and header != access.clinic_id:
        raise forbidden("wrong_clinic", "The token does not act for this clinic.")
    return access.clinic_id


def _foreign() -> FhirError:
    return FhirError.of(403, "the resource belongs to another clinic or patient than the token's", "forbidden")


class _Scoped:
    def __init__(self, inner: Any, access: FhirAccess) -> None:
        self._inner = inner
        self._access = access

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class _ScopedResources(_Scoped):
    def _visible(self, stored: Any) -> bool:
        return stored is None or self._access.visible(stored.clinic_id, stored.patient_id)

    def _owner_visible(self, search: Any, resource_type: str, resource_id: str) -> bool | None:
        owner = search.owners([(resource_type, resource_id)]).get((resource_type, resource_id))
        return None if owner is None else self._access.visible(*owner)

    def read(self, resource_type: str, resource_id: str) -> Any:
        stored = self._inner.read(resource_type, resource_id)
        if stored is None:
            return None
        if not self._visible(stored):
            if self._access.patient_id is not None and self._access.visible(stored.clinic_id, None):
                raise FhirError.of(403, "the token is confined to another patient's compartment", "forbidden")
            return None  # another clinic's: not found, nothing leaks
        self._access.touch(resource_type, resource_id, stored.patient_id)
        return stored

    def read_version(self, resource_type: str, resource_id: str, version_id: int) -> Any:
        if self._owner_visible(self._search, resource_type, resource_id) is False:
            return None
        stored = self._inner.read_version(resource_type, resource_id, version_id)
        if stored is not None:
            self._access.touch(resource_type, f"{resource_id}/_history/{version_id}", stored.patient_id)
        return stored

    def history(self, resource_type: str, resource_id: str) -> list[Any]:
        if self._owner_visible(self._search, resource_type, resource_id) is False:
            return []
        versions = self._inner.history(resource_type, resource_id)
        if versions:
            self._access.touch(resource_type, resource_id, versions[0].patient_id)
        return versions

    def by_source(self, kind: str, clinic_id: str, key: str) -> list[Any]:
        return [s for s in self._inner.by_source(kind, clinic_id, key) if self._visible(s)]

    def for_patient(self, patient_id: str) -> list[Any]:
        return [s for s in self._inner.for_patient(patient_id) if self._visible(s)]

    def _check_targets(self, resources: Sequence[dict]) -> None:
        keys = [(r.get("resourceType"), r.get("id")) for r in resources if r.get("id")]
        owners = self._search.owners([k for k in keys if isinstance(k[0], str) and isinstance(k[1], str)])
        if any(not self._access.visible(*owner) for owner in owners.values()):
            raise _foreign()

    def _check_written(self, writes: Sequence[Any]) -> None:
        patients = [("Patient", w.patient_id) for w in writes if w.patient_id and w.resource_type != "Patient"]
        owners = self._search.owners(patients) if patients else {}
        for write in writes:
            if not self._access.visible(write.clinic_id, write.patient_id):
                raise _foreign()
            owner = owners.get(("Patient", write.patient_id or ""))
            if owner is not None and not self._access.visible(*owner):  # a reference into another tenant
                raise _foreign()
            self._access.touch(write.resource_type, write.id, write.patient_id)

    def save(self, resource: dict, **kwargs: Any) -> Any:
        self._check_targets([resource])
        write = self._inner.save(resource, **kwargs)
        self._check_written([write])
        return write

    def save_many(self, items: Sequence[Any], **kwargs: Any) -> Any:
        self._check_targets([item.resource for item in items])
        result = self._inner.save_many(items, **kwargs)
        self._check_written(list(result.writes) + list(result.deleted))
        return result

    def delete(self, resource_type: str, resource_id: str) -> Any:
        if self._owner_visible(self._search, resource_type, resource_id) is False:
            return None
        deleted = self._inner.delete(resource_type, resource_id)
        if deleted is not None:
            self._access.touch(resource_type, resource_id, deleted.patient_id)
        return deleted


class _ScopedSearch(_Scoped):
    def _spec(self, spec: Any) -> Any:
        return dataclasses.replace(
            spec,
            clinic_id=self._access.clinic_id if self._access.clinic_id is not None else spec.clinic_id,
            compartment_patient=self._access.patient_id,
        )

    def search(self, spec: Any, **kwargs: Any) -> Any:
        rows, more = self._inner.search(self._spec(spec), **kwargs)
        for row in rows:
            self._access.touch(row.resource_type, row.id, row.patient_id)
        return rows, more

    def count(self, spec: Any) -> int:
        return int(self._inner.count(self._spec(spec)))

    def statement(self, spec: Any, **kwargs: Any) -> Any:
        return self._inner.statement(self._spec(spec), **kwargs)

    def read_many(self, refs: Sequence[tuple[str, str]]) -> list[Any]:
        found = [f for f in self._inner.read_many(refs) if self._access.visible(f.clinic_id, f.patient_id)]
        for row in found:
            self._access.touch(row.resource_type, row.id, row.patient_id)
        return found

    def compartment(self, patient_id: str, **kwargs: Any) -> Any:
        if self._access.patient_id is not None and patient_id != self._access.patient_id:
            return [], False
        rows, more = self._inner.compartment(patient_id, **kwargs)
        rows = [r for r in rows if self._access.visible(r.clinic_id, r.patient_id)]
        for row in rows:
            self._access.touch(row.resource_type, row.id, row.patient_id)
        return rows, more

    def was_deleted(self, resource_type: str, resource_id: str) -> bool:
        owner = self._inner.owners([(resource_type, resource_id)]).get((resource_type, resource_id))
        if owner is not None and not self._access.visible(*owner):
            return False
        return bool(self._inner.was_deleted(resource_type, resource_id))

    def type_history(self, resource_type: str, **kwargs: Any) -> Any:
        return self._inner.type_history(
            resource_type, owner_clinic=self._access.clinic_id, owner_patient=self._access.patient_id, **kwargs
        )


class ScopedUnitOfWork(UnitOfWork):
    """A unit of work whose FHIR repositories only see one clinic (and patient)."""

    def __init__(self, inner: UnitOfWork, access: FhirAccess) -> None:
        self._inner_uow = inner
        self._access = access

    def __enter__(self) -> "ScopedUnitOfWork":
        self._inner_uow.__enter__()
        self._bind()
        return self

    def _bind(self) -> None:
        inner = self._inner_uow
        self.search = _ScopedSearch(inner.search, self._access)  # type: ignore[assignment]
        resources = _ScopedResources(inner.resources, self._access)
        resources._search = inner.search  # type: ignore[attr-defined]
        self.resources = resources  # type: ignore[assignment]
        self.records = inner.records
        self.outbox = inner.outbox
        self.idempotency = inner.idempotency
        self.coverage = inner.coverage

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner_uow, name)

    @property  # type: ignore[override]
    def now(self) -> Any:
        return self._inner_uow.now

    def __exit__(self, *exc_info: Any) -> None:
        self._inner_uow.__exit__(*exc_info)

    def commit(self) -> None:
        self._inner_uow.commit()

    def rollback(self) -> None:
        self._inner_uow.rollback()
