"""Role-based access to the service's doors: the `Access` matrix and `require_role`.

Scopes (`scopes.py`) say *which FHIR resources* a token may touch; roles say *which doors* it
may use at all. FHIR routes check both (`require_role(p, Action.FHIR_API)` then
`p.require(type, interaction)`); domain and coverage routes check the role only, plus tenancy
(`require_clinic`).

| action                    | ehr-system | clinician | billing | admin |
|---------------------------|:----------:|:---------:|:-------:|:-----:|
| fhir.api (per scopes)     |     x      |     x     |         |   x   |
| domain.read               |     x      |     x     |         |   x   |
| domain.write              |            |     x     |         |   x   |
| domain.course_summary.read|     x      |     x     |    x    |   x   |
| domain.psychotherapy.read |     x      |     x     |         |   x   |
| coverage.read             |            |           |    x    |   x   |
| coverage.write            |            |           |    x    |   x   |
| audit.read (AuditEvent)   |            |           |         |   x   |
| sync.admin                |            |           |         |   x   |

`domain.read` covers program records *except* integration-psychotherapy details, which need
`domain.psychotherapy.read` too; billing staff get the course summary only (what a prior
authorization needs: diagnoses, scores, administrations), never psychotherapy details.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from types import MappingProxyType

from service.auth.errors import forbidden
from service.auth.tokens import Principal


class Role(StrEnum):
    EHR_SYSTEM = "ehr-system"
    CLINICIAN = "clinician"
    BILLING = "billing"
    ADMIN = "admin"


class Action(StrEnum):
    FHIR_API = "fhir.api"
    DOMAIN_READ = "domain.read"
    DOMAIN_WRITE = "domain.write"
    COURSE_SUMMARY_READ = "domain.course_summary.read"
    PSYCHOTHERAPY_READ = "domain.psychotherapy.read"
    COVERAGE_READ = "coverage.read"
    COVERAGE_WRITE = "coverage.write"
    AUDIT_READ = "audit.read"
    SYNC_ADMIN = "sync.admin"


ACCESS: MappingProxyType[Role, frozenset[Action]] = MappingProxyType(
    {
        Role.EHR_SYSTEM: frozenset(
            {Action.FHIR_API, Action.DOMAIN_READ, Action.COURSE_SUMMARY_READ, Action.PSYCHOTHERAPY_READ}
        ),
        Role.CLINICIAN: frozenset(
            {
                Action.FHIR_API,
                Action.DOMAIN_READ,
                Action.DOMAIN_WRITE,
                Action.COURSE_SUMMARY_READ,
                Action.PSYCHOTHERAPY_READ,
            }
        ),
        Role.BILLING: frozenset({Action.COVERAGE_READ, Action.COVERAGE_WRITE, Action.COURSE_SUMMARY_READ}),
        Role.ADMIN: frozenset(Action),
    }
)
"""The access matrix: role -> actions it may perform."""


def allowed_actions(roles: Iterable[str]) -> frozenset[Action]:
    """Union of the actions of `roles` (unknown role names grant nothing)."""
    actions: set[Action] = set()
    for role in roles:
        try:
            actions |= ACCESS[Role(role)]
        except ValueError:
            continue
    return frozenset(actions)


def has_access(principal: Principal, action: Action | str) -> bool:
    """Whether any of the principal's roles allows `action`."""
    return Action(action) in allowed_actions(principal.roles)


def require_role(principal: Principal, action: Action | str) -> None:
    """Raise `AuthError` 403 `insufficient_role` unless a role of `principal` allows `action`."""
    if not has_access(principal, action):
        raise forbidden("insufficient_role", "The caller's roles do not allow this action.")


def require_clinic(principal: Principal, clinic_id: str) -> None:
    """Tenancy: raise 403 `wrong_clinic` unless the token acts for `clinic_id`.

    An `admin` token without a `clinic` claim acts for every clinic; every other token must name
    the clinic.
    """
    if principal.clinic_id == clinic_id:
        return
    if principal.clinic_id is None and Role.ADMIN in principal.roles:
        return
    raise forbidden("wrong_clinic", "The token does not act for this clinic.")


def require_patient_access(principal: Principal, patient_id: str) -> None:
    """Patient compartment: raise 403 `patient_compartment` when a patient-confined token asks
    about another patient."""
    if principal.confined_to_patient and principal.patient_id != patient_id:
        raise forbidden("patient_compartment", "The token is confined to a different patient's compartment.")
