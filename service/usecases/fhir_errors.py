"""FHIR REST errors: each becomes an OperationOutcome with the HTTP status it names.

`FhirError(status, diagnostics, code=..., expression=[...])` is raised by the FHIR use cases
(and the FHIR API layer); `operation_outcome(...)` builds the resource. Messages never echo
resource content beyond element paths and the offending parameter value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable


@dataclass(frozen=True)
class OutcomeIssue:
    severity: str
    """fatal | error | warning | information"""
    code: str
    """OperationOutcome.issue.code (invalid, not-found, processing, conflict, ...)"""
    diagnostics: str
    expression: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        issue: dict[str, Any] = {"severity": self.severity, "code": self.code, "diagnostics": self.diagnostics}
        if self.expression:
            issue["expression"] = list(self.expression)
        return issue


def operation_outcome(issues: Iterable[OutcomeIssue], *, resource_id: str | None = None) -> dict[str, Any]:
    issues = list(issues) or [OutcomeIssue("information", "informational", "All OK")]
    outcome: dict[str, Any] = {"resourceType": "OperationOutcome"}
    if resource_id:
        outcome["id"] = resource_id
    outcome["issue"] = [i.as_dict() for i in issues]
    return outcome


@dataclass
class FhirError(Exception):
    """A FHIR interaction failed with `status`; `issues` say why (and where)."""

    status: int
    issues: list[OutcomeIssue] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.issues[0].diagnostics if self.issues else str(self.status))

    @classmethod
    def of(cls, status: int, diagnostics: str, code: str = "processing", expression: Iterable[str] = ()) -> "FhirError":
        return cls(status, [OutcomeIssue("error", code, diagnostics, tuple(expression))])

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.issues)

    def prefixed(self, prefix: str) -> "FhirError":
        """The same error with every expression re-rooted under `prefix` (e.g. the entry of a
        transaction Bundle: 'Observation.subject' -> 'Bundle.entry[3].resource.subject'), and
        an expression pointing at the entry when the issue had none."""
        issues = []
        for issue in self.issues:
            if issue.expression:
                expressions = tuple(prefix + _after_type(e) for e in issue.expression)
            else:
                expressions = (prefix.removesuffix(".resource"),)
            issues.append(OutcomeIssue(issue.severity, issue.code, issue.diagnostics, expressions))
        return FhirError(self.status, issues, dict(self.headers))


def _after_type(expression: str) -> str:
    """'Observation.subject' -> '.subject'; 'Observation' -> ''."""
    head, dot, rest = expression.partition(".")
    if head[:1].isupper() and "[" not in head:
        return dot + rest
    return "." + expression


def not_found(resource_type: str, resource_id: str) -> FhirError:
    return FhirError.of(404, f"{resource_type}/{resource_id} is not known", "not-found")


def invalid(diagnostics: str, *expression: str, status: int = 400) -> FhirError:
    return FhirError.of(status, diagnostics, "invalid", expression)
