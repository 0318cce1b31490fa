"""FHIR `$validate` (POST [type]/$validate): structure (R4B models), our business rules, and,
when an HL7 validator is available, full validation against FHIR R4 core and the requested
profile. The answer is always an OperationOutcome with HTTP 200 (FHIR: the operation worked,
the resource may not be valid)."""

from __future__ import annotations

from typing import Any, Protocol, Sequence

from ..store import UnitOfWork
from .fhir_errors import OutcomeIssue, invalid, operation_outcome
from .fhir_read import check_type
from .fhir_write import rule_issues, structure_issues


class ProfileValidator(Protocol):
    """HL7Validator / RemoteHL7Validator: `.validate(resource, profile)` -> result with `.issues`
    (each with severity, code, location, message)."""

    def validate(self, resource: dict[str, Any], profile: str | None = None) -> Any: ...


def _parameters(body: dict) -> tuple[Any, str | None, str | None]:
    resource, profile, mode = None, None, None
    for parameter in body.get("parameter", []) if isinstance(body.get("parameter"), list) else []:
        if not isinstance(parameter, dict):
            continue
        name = parameter.get("name")
        if name == "resource":
            resource = parameter.get("resource")
        elif name == "profile":
            profile = parameter.get("valueUri") or parameter.get("valueCanonical") or parameter.get("valueString")
        elif name == "mode":
            mode = parameter.get("valueCode") or parameter.get("valueString")
    return resource, profile, mode


def validate(
    uow: UnitOfWork, resource_type: str, body: Any, *, profile: str | None = None, validator: ProfileValidator | None = None,
    query: Sequence[tuple[str, str]] = (),
) -> dict:
    """The OperationOutcome of validating `body` (a resource or a Parameters with `resource`,
    optional `profile` and `mode`) as a `resource_type`."""
    check_type(resource_type)
    if not isinstance(body, dict):
        raise invalid("$validate takes a resource or a Parameters resource")
    mode = None
    for key, value in query:
        if key == "profile":
            profile = profile or value
        elif key == "mode":
            mode = value
    resource = body
    if body.get("resourceType") == "Parameters":
        resource, body_profile, body_mode = _parameters(body)
        profile, mode = profile or body_profile, mode or body_mode
        if not isinstance(resource, dict):
            if mode == "delete":
                return operation_outcome([OutcomeIssue("information", "informational", "delete needs no resource: nothing to validate")])
            raise invalid("the Parameters resource has no 'resource' parameter", "Parameters.parameter")
    if mode not in (None, "create", "update", "delete", "profile"):
        raise invalid(f"mode {str(mode)[:40]!r} is not one of create, update, delete, profile")
    if profile is not None and not isinstance(profile, str):
        raise invalid("profile must be a canonical URL")
    if resource.get("resourceType") != resource_type:
        issues = [OutcomeIssue(
            "error", "invalid", f"resourceType {str(resource.get('resourceType'))[:60]!r} is not {resource_type}", ("resourceType",)
        )]
        return operation_outcome(issues)
    issues = structure_issues(resource)
    if not issues:
        with uow:
            issues = rule_issues(uow, resource)
    if validator is not None:
        try:
            result = validator.validate(resource, profile=profile)
            issues += [
                OutcomeIssue(i.severity, i.code or "processing", i.message, (i.location,) if i.location else ())
                for i in result.issues
            ]
        except Exception as error:  # noqa: BLE001 - an unavailable validator must not fail $validate
            issues.append(OutcomeIssue("warning", "exception", f"the HL7 validator could not be reached ({type(error).__name__})"))
    elif profile is not None:
        issues.append(OutcomeIssue(
            "warning", "not-supported",
            f"profile {profile[:200]} was not checked: no HL7 validator is configured (VALIDATOR_URL or FHIR_VALIDATE_WITH_HL7=1)",
        ))
    if not any(i.severity in ("error", "fatal") for i in issues):
        issues.insert(0, OutcomeIssue("information", "informational", "validation found no errors"))
    return operation_outcome(issues)
