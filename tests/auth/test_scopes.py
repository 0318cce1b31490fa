"""SMART scope parsing (v1 and v2) and what a `ScopeSet` allows."""

from __future__ import annotations

import pytest

from service.auth.scopes import IgnoredScope, Permission, ScopeSet, parse_scope

VITALS = "http://terminology.hl7.org/CodeSystem/observation-category|vital-signs"

PARSE_TABLE: list[tuple[str, tuple[str, str, str, int] | str | None]] = [
    # scope -> (context, resource type, letters in cruds order, version), None = ignored
    ("system/Observation.rs", ("system", "Observation", "rs", 2)),
    ("system/*.cruds", ("system", "*", "cruds", 2)),
    ("user/*.cruds", ("user", "*", "cruds", 2)),
    ("patient/*.rs", ("patient", "*", "rs", 2)),
    ("system/Observation.crus", ("system", "Observation", "crus", 2)),
    ("system/QuestionnaireResponse.cru", ("system", "QuestionnaireResponse", "cru", 2)),
    ("system/Patient.s", ("system", "Patient", "s", 2)),
    ("system/Patient.c", ("system", "Patient", "c", 2)),
    ("system/*.read", ("system", "*", "rs", 1)),
    ("user/*.write", ("user", "*", "cud", 1)),
    ("patient/Observation.*", ("patient", "Observation", "cruds", 1)),
    ("system/*.*", ("system", "*", "cruds", 1)),
    ("patient/MedicationAdministration.read", ("patient", "MedicationAdministration", "rs", 1)),
    # invalid: ignored with a reason
    ("system/Observation.dus", None),
    ("system/Observation.sr", None),
    ("system/Observation.rr", None),
    ("system/Observation.x", None),
    ("system/Observation.", None),
    ("system/Observation", None),
    ("system/observation.rs", None),
    ("system/Obs-ervation.rs", None),
    ("system/*.read?category=survey", None),
    ("system/Observation.rs?category", None),
    ("system/Observation.rs?=x", None),
    ("clinic/*.rs", "other"),  # not a SMART context: not a resource scope
]

ORDER = "cruds"


@pytest.mark.parametrize(("scope", "expected"), PARSE_TABLE, ids=[scope for scope, _ in PARSE_TABLE])
def test_scope_parse_table(scope: str, expected: tuple[str, str, str, int] | str | None) -> None:
    parsed = parse_scope(scope)
    if expected is None:
        assert isinstance(parsed, IgnoredScope)
        assert parsed.reason
        assert ScopeSet.parse(scope).permissions == ()
        assert ScopeSet.parse(scope).ignored == (parsed,)
    elif expected == "other":
        assert parsed is None
        assert ScopeSet.parse(scope).other == (scope,)
    else:
        assert isinstance(expected, tuple)
        context, resource_type, letters, version = expected
        assert isinstance(parsed, Permission)
        assert (parsed.context, parsed.resource_type, parsed.version, parsed.scope) == (
            context,
            resource_type,
            version,
            scope,
        )
        assert "".join(letter for letter in ORDER if letter in parsed.interactions) == letters
        assert parsed.interactions == set(letters)


def test_invalid_order_reason_is_explained() -> None:
    parsed = parse_scope("system/Observation.dus")
    assert isinstance(parsed, IgnoredScope)
    assert "order" in parsed.reason


def test_granular_filter_is_parsed_and_kept() -> None:
    scope = f"system/Observation.rs?category={VITALS}"
    parsed = parse_scope(scope)
    assert isinstance(parsed, Permission)
    assert parsed.filters == (("category", VITALS),)
    scopes = ScopeSet.parse(scope)
    grant = scopes.grant("Observation", "search")
    assert grant is not None
    assert grant.filters == ((("category", VITALS),),)


def test_granular_filter_percent_encoded_and_multiple_params() -> None:
    parsed = parse_scope("patient/Observation.rs?category=laboratory&code=http%3A%2F%2Floinc.org%7C44249-1")
    assert isinstance(parsed, Permission)
    assert parsed.filters == (("category", "laboratory"), ("code", "http://loinc.org|44249-1"))


def test_unfiltered_scope_lifts_the_filter() -> None:
    scopes = ScopeSet.parse(f"system/Observation.rs?category={VITALS} system/Observation.rs")
    grant = scopes.grant("Observation", "read")
    assert grant is not None and grant.filters == ()


def test_other_scopes_are_kept_apart() -> None:
    scopes = ScopeSet.parse("openid fhirUser launch/patient offline_access system/*.rs")
    assert scopes.other == ("openid", "fhirUser", "launch/patient", "offline_access")
    assert len(scopes.permissions) == 1


def test_duplicates_and_extra_whitespace() -> None:
    scopes = ScopeSet.parse("  system/*.rs   system/*.rs\tsystem/Patient.c ")
    assert [p.scope for p in scopes.permissions] == ["system/*.rs", "system/Patient.c"]


def test_list_form_is_accepted() -> None:
    assert ScopeSet.parse(["system/*.rs", "user/Patient.c"]).allows("Patient", "create")


ALLOWS_TABLE = [
    ("system/Observation.rs", "Observation", "read", True),
    ("system/Observation.rs", "Observation", "search", True),
    ("system/Observation.rs", "Observation", "vread", True),
    ("system/Observation.rs", "Observation", "history", True),
    ("system/Observation.rs", "Observation", "create", False),
    ("system/Observation.rs", "Patient", "read", False),
    ("system/*.cud", "Procedure", "update", True),
    ("system/*.cud", "Procedure", "read", False),
    ("system/*.read", "Patient", "search", True),
    ("system/*.read", "Patient", "update", False),
    ("user/*.write", "Observation", "create", True),
    ("user/*.write", "Observation", "delete", True),
    ("user/*.write", "Observation", "search", False),
    ("patient/Observation.*", "Observation", "delete", True),
    ("patient/Observation.*", "Condition", "read", False),
    ("system/Observation.dus", "Observation", "delete", False),  # invalid grants nothing
    ("", "Observation", "read", False),
]


@pytest.mark.parametrize(("scope", "resource_type", "interaction", "allowed"), ALLOWS_TABLE)
def test_allows_table(scope: str, resource_type: str, interaction: str, allowed: bool) -> None:
    assert ScopeSet.parse(scope).allows(resource_type, interaction) is allowed


def test_unknown_interaction_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        ScopeSet.parse("system/*.rs").allows("Observation", "fetch")


def test_patient_scope_grant_is_patient_only() -> None:
    scopes = ScopeSet.parse("patient/*.rs")
    grant = scopes.grant("Observation", "read")
    assert grant is not None and grant.patient_only
    mixed = ScopeSet.parse("patient/*.rs system/Observation.rs").grant("Observation", "read")
    assert mixed is not None and not mixed.patient_only


EVERYTHING_TYPES = ["Patient", "Observation", "QuestionnaireResponse", "MedicationAdministration", "Procedure"]


def test_everything_needs_read_and_search_on_each_type() -> None:
    assert ScopeSet.parse("patient/*.rs").allows_operation("$everything", EVERYTHING_TYPES)
    partial = ScopeSet.parse("patient/Patient.rs patient/Observation.rs")
    assert not partial.allows_operation("$everything", EVERYTHING_TYPES)
    assert partial.permitted_types(EVERYTHING_TYPES) == ["Patient", "Observation"]
    read_only = ScopeSet.parse("patient/*.r")
    assert not read_only.allows_operation("$everything", EVERYTHING_TYPES)


def test_export_needs_system_scopes() -> None:
    assert ScopeSet.parse("system/*.rs").allows_operation("$export", EVERYTHING_TYPES)
    assert ScopeSet.parse("system/*.read").allows_operation("$export", EVERYTHING_TYPES)
    assert not ScopeSet.parse("user/*.rs").allows_operation("$export", EVERYTHING_TYPES)
    assert not ScopeSet.parse("patient/*.rs").allows_operation("$export", EVERYTHING_TYPES)
    assert not ScopeSet.parse("system/*.s").allows_operation("$export", EVERYTHING_TYPES)
    with pytest.raises(ValueError):
        ScopeSet.parse("system/*.rs").allows_operation("$purge", EVERYTHING_TYPES)
