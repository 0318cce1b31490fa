"""A client for an HL7 validator that is already running (`fhir-validator.jar serve`, e.g. in
another container), configured with VALIDATOR_URL. Same `validate()` contract as
`HL7Validator`, without owning the JVM."""

from __future__ import annotations

import json
from typing import Any

import httpx

from .hl7_validator import ValidationResult


class RemoteHL7Validator:
    def __init__(self, base_url: str, *, timeout: float = 120.0) -> None:
        self._client = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, trust_env=False)

    def validate(self, resource: dict[str, Any] | bytes | str, profile: str | None = None) -> ValidationResult:
        body = json.dumps(resource).encode() if isinstance(resource, dict) else resource.encode() if isinstance(resource, str) else bytes(resource)
        response = self._client.post(
            "/validate", content=body, params={"profile": profile} if profile else None,
            headers={"Content-Type": "application/fhir+json"},
        )
        if response.status_code != 200:
            raise RuntimeError(f"validator answered {response.status_code}")
        return ValidationResult.from_outcome(response.json())

    def close(self) -> None:
        self._client.close()
