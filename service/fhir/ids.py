"""Deterministic resource ids derived from business identifiers.

A resource id is UUIDv5 over "<ResourceType>|<identifier system>|<identifier value>", so the
same record always maps to the same id: re-sending is harmless and duplicates cannot arise
(the approach of Microsoft's FHIR-Converter, docs/concepts/resource-id-generation.md).
"""

from __future__ import annotations

import uuid
from functools import lru_cache

NAMESPACE = uuid.UUID("0f3a2c1e-6b7d-5e4f-9a8b-7c6d5e4f3a2b")
CANONICAL_BASE = "http://ketamine-interop.example.org/fhir"


@lru_cache(maxsize=65536)
def resource_id(resource_type: str, system: str, value: str) -> str:
    """The id of the `resource_type` resource identified by (`system`, `value`)."""
    return str(uuid.uuid5(NAMESPACE, f"{resource_type}|{system}|{value}"))


def canonical(kind: str, name: str) -> str:
    """Canonical URL of one of our conformance resources (CodeSystem, Questionnaire, ...)."""
    return f"{CANONICAL_BASE}/{kind}/{name}"
