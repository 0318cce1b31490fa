"""HTTP client of a payer's FHIR endpoint (any base URL): eligibility, PAS $submit, $inquire.

`POST {base}/CoverageEligibilityRequest`, `POST {base}/Claim/$submit` (body: the PAS request
Bundle), `POST {base}/Claim/$inquire` (body: the PAS inquiry Bundle). Answers may be a Bundle,
a resource, or a Parameters wrapping Bundles; callers get the parsed JSON as sent.
"""

from __future__ import annotations

from typing import Any

import httpx

FHIR_JSON = "application/fhir+json"


class PayerError(RuntimeError):
    """The payer could not be reached or did not answer with FHIR JSON."""

    def __init__(self, message: str, status: int | None = None, body: dict | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


class PayerClient:
    def __init__(self, base_url: str, *, timeout: float = 20.0, transport: httpx.BaseTransport | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(timeout=timeout, transport=transport, trust_env=False,
                                    headers={"Accept": FHIR_JSON, "Content-Type": FHIR_JSON, **(headers or {})})

    def _post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        url = f"{self.base_url}/{path}"
        try:
            response = self._client.post(url, json=body)
        except httpx.HTTPError as error:
            raise PayerError(f"payer endpoint {url} unreachable: {error}") from None
        try:
            document = response.json()
        except ValueError:
            raise PayerError(f"payer answered HTTP {response.status_code} without JSON", response.status_code) from None
        if response.status_code >= 400 and document.get("resourceType") != "OperationOutcome":
            raise PayerError(f"payer answered HTTP {response.status_code}", response.status_code, document)
        return response.status_code, document

    def eligibility(self, request: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return self._post("CoverageEligibilityRequest", request)

    def submit(self, bundle: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return self._post("Claim/$submit", bundle)

    def inquire(self, bundle: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        return self._post("Claim/$inquire", bundle)

    def close(self) -> None:
        self._client.close()
