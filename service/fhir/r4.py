"""The pinned FHIR model set: fhir.resources' R4B package, the closest to R4 4.0.1.

fhir.resources 8.x defaults to R5; every structural check of our JSON goes through this
module so the pin lives in one place. The HL7 validator (R4, profiles) remains the judge.
"""

from __future__ import annotations

import importlib
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=None)
def model_class(resource_type: str) -> Any:
    module = importlib.import_module(f"fhir.resources.R4B.{resource_type.lower()}")
    return getattr(module, resource_type)


def parse(resource: dict) -> Any:
    """Parse a resource dict with the R4B model of its type (raises pydantic ValidationError)."""
    return model_class(resource["resourceType"]).model_validate(resource)
