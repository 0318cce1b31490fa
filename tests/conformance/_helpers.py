"""Shared helpers for the validator conformance tests (fixture loading, issue matching)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from service.conformance.hl7_validator import Issue, ValidationResult

DATA = Path(__file__).resolve().parent / "data"
US_CORE_BP = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-blood-pressure"
US_CORE_HR = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-heart-rate"
NOT_CHECKED = "not checked offline: "


def load(relative: str) -> dict[str, Any]:
    """A deep copy of a JSON fixture under tests/conformance/data."""
    return copy.deepcopy(json.loads((DATA / relative).read_text(encoding="utf-8")))


def errors_matching(result: ValidationResult, *needles: str) -> list[Issue]:
    """Errors whose message or location contains every needle (case-insensitive)."""
    found = []
    for issue in result.errors:
        text = f"{issue.location} {issue.message}".lower()
        if all(n.lower() in text for n in needles):
            found.append(issue)
    return found


def describe(result: ValidationResult) -> str:
    """All issues, for assertion messages."""
    return result.format() or "(no issues)"
