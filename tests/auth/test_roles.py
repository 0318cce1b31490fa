"""The role access matrix, `require_role`, tenancy and patient-compartment checks."""

from __future__ import annotations

import pytest

from service.auth.errors import AuthError
from service.auth.roles import (
    ACCESS,
    Action,
    Role,
    allowed_actions,
    has_access,
    require_clinic,
    require_patient_access,
    require_role,
)
from service.auth.scopes import ScopeSet
from service.auth.tokens import Principal

A = Action
MATRIX: dict[str, set[Action]] = {
    "ehr-system": {A.FHIR_API, A.DOMAIN_READ, A.COURSE_SUMMARY_READ, A.PSYCHOTHERAPY_READ},
    "clinician": {A.FHIR_API, A.DOMAIN_READ, A.DOMAIN_WRITE, A.COURSE_SUMMARY_READ, A.PSYCHOTHERAPY_READ},
    "billing": {A.COVERAGE_READ, A.COVERAGE_WRITE, A.COURSE_SUMMARY_READ},
    "admin": set(Action),
}


def principal(*roles: str, clinic: str | None = "clinic-north", patient: str | None = None) -> Principal:
    return Principal(
        subject="caller",
        client_id="caller",
        issuer="https://idp.example.org",
        clinic_id=clinic,
        patient_id=patient,
        roles=frozenset(roles),
        scopes=ScopeSet.parse("system/*.rs"),
        expires_at=0,
    )


@pytest.mark.parametrize("role", sorted(MATRIX))
@pytest.mark.parametrize("action", list(Action), ids=[a.value for a in Action])
def test_role_matrix(role: str, action: Action) -> None:
    caller = principal(role)
    expected = action in MATRIX[role]
    assert has_access(caller, action) is expected
    if expected:
        require_role(caller, action)
    else:
        with pytest.raises(AuthError) as caught:
            require_role(caller, action)
        assert (caught.value.status, caught.value.code) == (403, "insufficient_role")


def test_matrix_constant_matches_the_documented_table() -> None:
    assert {role.value: set(actions) for role, actions in ACCESS.items()} == MATRIX


def test_billing_never_sees_psychotherapy_details() -> None:
    assert Action.PSYCHOTHERAPY_READ not in allowed_actions(["billing"])
    assert Action.DOMAIN_READ not in allowed_actions(["billing"])


def test_no_roles_means_no_access() -> None:
    for action in Action:
        assert not has_access(principal(), action)


def test_roles_combine_and_unknown_roles_grant_nothing() -> None:
    assert allowed_actions(["billing", "ehr-system"]) == MATRIX["billing"] | MATRIX["ehr-system"]
    assert allowed_actions(["root", "superuser"]) == frozenset()


def test_action_given_as_string() -> None:
    require_role(principal(Role.ADMIN), "sync.admin")
    with pytest.raises(ValueError):
        require_role(principal(Role.ADMIN), "no.such.action")


def test_require_clinic() -> None:
    require_clinic(principal("clinician"), "clinic-north")
    with pytest.raises(AuthError) as caught:
        require_clinic(principal("clinician"), "clinic-south")
    assert (caught.value.status, caught.value.code) == (403, "wrong_clinic")
    with pytest.raises(AuthError):
        require_clinic(principal("clinician", clinic=None), "clinic-north")
    require_clinic(principal("admin", clinic=None), "clinic-south")  # cross-clinic admin
    with pytest.raises(AuthError):
        require_clinic(principal("admin", clinic="clinic-north"), "clinic-south")


def test_require_patient_access() -> None:
    confined = principal("ehr-system", patient="pat-1")
    require_patient_access(confined, "pat-1")
    with pytest.raises(AuthError) as caught:
        require_patient_access(confined, "pat-2")
    assert (caught.value.status, caught.value.code) == (403, "patient_compartment")
    require_patient_access(principal("ehr-system"), "pat-2")  # system token: not confined
